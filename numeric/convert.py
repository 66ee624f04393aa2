"""Convert every ``nn.Conv2d`` of a network into its attention equivalent.

Two stages, each usable alone: :func:`plan_conversion` runs the network once on an example
input to see each convolution's input size and picks a patch size per layer;
:func:`convert_model` applies the plan to a copy (the original is never modified).
"""

from __future__ import annotations

import copy
import numbers
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from vitconv.numeric.attention import DEFAULT_KEY_DIM
from vitconv.numeric.conv_attention import as_attention
from vitconv.numeric.convertible import check_convertible, conv_geometry
from vitconv.theory.construction import structural_weights

DEFAULT_MAX_HEADS = 9  # the paper's budget: every kernel reaching one patch past its own
# Entries the compact form stores, in multiples of its kernel's own size, before the patch
# choice prefers weights to heads. The patch a kernel needs for 9 heads stores up to about
# 33x (7x7 at P = 4; 3x3 at P = 1: 1x); a patch forced larger by the map's size costs far
# more (a 5x5 kernel on a 7x7 map: P = 7, 237x), where 25 heads at P = 1 store 1x. The
# choice weighs the compact form whatever form is built, so that the trainable conversion
# (alpha=, compact=False; about twice the entries) gets the same patches and heads.
DEFAULT_MAX_WEIGHT_RATIO = 64.0


@dataclass(frozen=True)
class LayerPlan:
    """How one convolution is converted: its name, the input sizes seen, patch and heads."""

    name: str
    input_sizes: tuple[tuple[int, int], ...]
    patch_size: int
    num_heads: int
    # W_V and W_O entries the layer stores for a generic kernel, zero rows and (dense form)
    # 0/1 selections included; an upper bound for kernels with zero taps or channels
    # (theory.construction.structural_weights).
    weights: int = 0


def patch_candidates(conv: nn.Conv2d, sizes: tuple[tuple[int, int], ...]) -> list[int]:
    """Patch sizes dividing every seen input size and a multiple of both strides."""
    smallest = min(min(s) for s in sizes)
    return [P for P in range(1, smallest + 1)
            if all(h % P == 0 and w % P == 0 for h, w in sizes)
            and P % conv.stride[0] == 0 and P % conv.stride[1] == 0]


def choose_patch_size(conv: nn.Conv2d, sizes: tuple[tuple[int, int], ...],
                      max_heads: int = DEFAULT_MAX_HEADS,
                      max_weight_ratio: float = DEFAULT_MAX_WEIGHT_RATIO) -> int:
    """The admissible patch size weighing heads against weights.

    ``affordable``: the sizes whose compact construction stores at most
    ``max_weight_ratio`` times the kernel's entries (``structural_weights``; the smallest
    admissible size usually stores about 1x), whatever form is then built. The choice is
    the smallest affordable size needing at most ``max_heads`` heads; when none does, the
    affordable size with the fewest heads (the smallest such on ties); when none is
    affordable, the size storing the fewest entries.
    ``max_weight_ratio=inf`` lets heads alone decide.

    Raises:
        ValueError: if no patch size divides the input and is a multiple of the stride.
    """
    _check_weight_ratio(max_weight_ratio)
    candidates = patch_candidates(conv, sizes)
    if not candidates:
        raise ValueError(f"no patch size divides the input sizes {sizes} and is a multiple "
                         f"of stride={conv.stride}")
    geometries = {P: conv_geometry(conv, P) for P in candidates}
    heads = {P: g.num_heads for P, g in geometries.items()}
    weights = {P: structural_weights(g) for P, g in geometries.items()}
    affordable = [P for P in candidates if weights[P] <= max_weight_ratio * conv.weight.numel()]
    within = [P for P in affordable if heads[P] <= max_heads]
    if within:
        return within[0]
    if affordable:
        return min(affordable, key=lambda P: (heads[P], P))
    return min(candidates, key=lambda P: (weights[P], heads[P], P))


@torch.no_grad()
def _record_input_sizes(model: nn.Module, example_input: torch.Tensor,
                        convs: Mapping[str, nn.Conv2d]) -> dict[str, set[tuple[int, int]]]:
    sizes: dict[str, set[tuple[int, int]]] = {name: set() for name in convs}
    hooks = [conv.register_forward_pre_hook(
        lambda _m, args, name=name: sizes[name].add(tuple(args[0].shape[-2:])))
        for name, conv in convs.items()]
    modes = {m: m.training for m in model.modules()}
    try:
        model.eval()  # no batch-norm statistics change while we only look at shapes
        model(example_input)
    finally:
        for h in hooks:
            h.remove()
        for m, training in modes.items():
            m.train(training)
    return sizes


class _ConvProbe(nn.Conv2d):
    """Stands in for a convolution in the planning copy: the same output, computed from
    the original's weights without holding them. Its own ``weight`` and ``bias`` live on
    the ``meta`` device, so code in the copy that reads or writes them cannot reach the
    original (a read of values fails, and the plan falls back to a full copy)."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                         conv.padding, conv.dilation, conv.groups, conv.bias is not None,
                         conv.padding_mode, device="meta", dtype=conv.weight.dtype)
        object.__setattr__(self, "_source", conv)  # not a submodule: never copied or visited

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        source = self._source  # detached: a backward in the copy cannot reach the original
        bias = None if source.bias is None else source.bias.detach()
        return source._conv_forward(x, source.weight.detach(), bias)


def _sizes_on_a_copy(model: nn.Module, example_input: torch.Tensor,
                     convs: Mapping[str, nn.Conv2d]) -> dict[str, set[tuple[int, int]]]:
    """What :func:`_record_input_sizes` records, from a run of a copy of ``model``.

    The copy has its own modules, parameters and buffers, so whatever the forward does to
    them (``.data`` writes, lazy modules that materialise, running statistics) it does to
    the copy; only the convolutions' weights, most of the memory, are not copied: each
    convolution is a :class:`_ConvProbe` reading the original's. Where that copy cannot
    run (code elsewhere that reads a convolution's weight values), a full copy runs
    instead, at the memory of a full copy; a model that fails on both runs twice before
    its error is raised. Hooks of the other modules are copied with them (the same
    functions): they run on the copy, with whatever their closures hold.
    """
    try:
        probes: dict[int, object] = {id(conv): _ConvProbe(conv) for conv in convs.values()}
        replica = copy.deepcopy(model, probes)
        copies = {name: m for name, m in replica.named_modules() if name in convs}
        return _record_input_sizes(replica, example_input, copies)
    except Exception:
        pass
    replica = copy.deepcopy(model)
    copies = {name: m for name, m in replica.named_modules() if name in convs}
    return _record_input_sizes(replica, example_input, copies)


def _check_weight_ratio(ratio: object) -> None:
    if isinstance(ratio, bool) or not isinstance(ratio, numbers.Real) or not ratio >= 1:
        raise ValueError(f"max_weight_ratio must be a real number >= 1 (the kernel's own "
                         f"size; inf: heads alone decide), got {ratio!r}")


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _check_patch_size_argument(patch_size: object) -> None:
    """``None``, a positive int, or a mapping of layer names to positive ints; never a
    float (2.0 would silently become another choice) or a bool."""
    if patch_size is None or _positive_int(patch_size):
        return
    if isinstance(patch_size, Mapping):
        bad = {k: v for k, v in patch_size.items() if not _positive_int(v)}
        if bad:
            raise ValueError(f"patch_size values must be positive ints, got {bad}")
        return
    raise ValueError(f"patch_size must be None, a positive int or a mapping of layer names "
                     f"to positive ints, got {patch_size!r}")


def plan_conversion(
    model: nn.Module,
    example_input: torch.Tensor,
    patch_size: int | Mapping[str, int] | None = None,
    *,
    max_heads: int = DEFAULT_MAX_HEADS,
    max_weight_ratio: float = DEFAULT_MAX_WEIGHT_RATIO,
    on_copy: bool = False,
    compact: bool = True,
) -> tuple[LayerPlan, ...]:
    """A patch size for every ``nn.Conv2d`` of ``model`` (by module name).

    Args:
        patch_size: one size for every layer, a mapping ``{module name: size}`` overriding
            the choice per layer, or ``None`` to choose each by :func:`choose_patch_size`
            from the input sizes seen on ``example_input``.
        max_heads, max_weight_ratio: guide :func:`choose_patch_size`; never refuse a layer.
        on_copy: run a copy instead of ``model`` itself (:func:`_sizes_on_a_copy`), so
            that ``model`` is not even run.
        compact: whether the layers will store their selections as indices (what each
            plan's ``weights`` counts; the patch choice weighs the compact form either way).
    Raises:
        TypeError: a ``Conv2d`` subclass with its own ``forward`` (named).
        ValueError: a mapping names no convolution, or a layer not reached by
            ``example_input`` has no given patch size.
    """
    _check_patch_size_argument(patch_size)
    if isinstance(max_heads, bool) or not isinstance(max_heads, int) or max_heads < 1:
        raise ValueError(f"max_heads must be a positive int, got {max_heads!r}")
    _check_weight_ratio(max_weight_ratio)
    if not isinstance(compact, bool):
        raise ValueError(f"compact must be a bool, got {compact!r}")
    if not isinstance(example_input, torch.Tensor):
        raise TypeError(f"example_input must be a torch.Tensor, got "
                        f"{type(example_input).__name__}")
    convs = {name: m for name, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    for name, conv in convs.items():
        try:
            check_convertible(conv)
        except (TypeError, ValueError) as err:
            raise type(err)(f"layer {name!r}: {err}") from None
    overrides = dict(patch_size) if isinstance(patch_size, Mapping) else {}
    unknown = sorted(set(overrides) - set(convs))
    if unknown:
        raise ValueError(f"patch_size names layers that are not Conv2d modules: {unknown}")
    sizes = (_sizes_on_a_copy(model, example_input, convs) if on_copy
             else _record_input_sizes(model, example_input, convs))
    plans = []
    for name, conv in convs.items():
        seen = tuple(sorted(sizes[name]))
        if name in overrides:
            P = overrides[name]
        elif isinstance(patch_size, int):
            P = patch_size
        elif not seen:
            raise ValueError(f"layer {name!r} did not run on example_input; give its patch "
                             "size in patch_size={name: size}")
        else:
            P = choose_patch_size(conv, seen, max_heads, max_weight_ratio)
        geometry = conv_geometry(conv, P)
        plans.append(LayerPlan(name, seen, P, geometry.num_heads,
                               structural_weights(geometry, compact)))
    return tuple(plans)


def convert_model(
    model: nn.Module,
    example_input: torch.Tensor,
    patch_size: int | Mapping[str, int] | None = None,
    *,
    alpha: float | None = None,
    max_heads: int = DEFAULT_MAX_HEADS,
    max_weight_ratio: float = DEFAULT_MAX_WEIGHT_RATIO,
    key_dim: int | None = None,
    compact: bool | None = None,
) -> nn.Module:
    """A copy of ``model`` with every ``nn.Conv2d`` replaced by ``as_attention`` of it.

    ``key_dim`` (query/key width per head) defaults to 1 with hard masks (``alpha=None``:
    each head's mask keeps one key, so its scores can never change the output and wider
    zero queries and keys would only cost memory) and to 8 with a finite gap, where the
    scores are trainable. ``compact`` (default: with hard masks) stores each layer's 0/1
    selection factor as indices where ``as_attention`` can (see there): the same function
    in about half the weights, with that factor fixed; ``compact=False`` gives ordinary
    dense, fully trainable projections.

    The patch size of each layer is chosen by :func:`plan_conversion` (see there for
    ``patch_size``, ``max_heads`` and ``max_weight_ratio``, which guide the choice but never
    refuse a layer).
    Shared convolutions stay shared. The original model is not modified, not even run: the
    plan runs on a copy (whose convolutions read the original's weights without holding
    them), freed before the conversion starts. Nor are the convolutions' weights copied
    into the result: each is read once into its attention layer, which takes its place in
    the copy. Peak memory is about the model plus the converted network plus the larger
    of the planning forward's activations (at ``example_input``'s batch) and one layer's
    blocks (only the pixels its taps touch, ``vitconv.numeric.blocks.offset_blocks``).
    The returned copy carries its plan as ``conversion_plan``.
    """
    if compact is not None and not isinstance(compact, bool):
        raise ValueError(f"compact must be None or a bool, got {compact!r}")
    compact = alpha is None if compact is None else compact
    plans = plan_conversion(model, example_input, patch_size, max_heads=max_heads,
                            max_weight_ratio=max_weight_ratio, on_copy=True, compact=compact)
    width = key_dim if key_dim is not None else (1 if alpha is None else DEFAULT_KEY_DIM)
    modules = dict(model.named_modules())
    # deepcopy consults the memo first: every convolution is replaced by its attention
    # layer in the copy, shared ones by one shared layer, and its weight is never copied.
    memo: dict[int, object] = {}
    for plan in plans:
        conv = modules[plan.name]
        if id(conv) not in memo:
            attn = as_attention(conv, plan.patch_size, alpha=alpha, key_dim=width,
                                compact=compact)
            memo[id(conv)] = attn.train(conv.training)
    converted = copy.deepcopy(model, memo)
    converted.conversion_plan = plans
    return converted
