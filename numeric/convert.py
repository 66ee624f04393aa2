"""Convert every ``nn.Conv2d`` of a network into its attention equivalent.

Two stages, each usable alone: :func:`plan_conversion` runs the network once on an example
input to see each convolution's input size and picks a patch size per layer;
:func:`convert_model` applies the plan to a copy (the original is never modified).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from vitconv.numeric.attention import DEFAULT_KEY_DIM
from vitconv.numeric.conv_attention import as_attention
from vitconv.numeric.convertible import check_convertible, conv_geometry

DEFAULT_MAX_HEADS = 9  # the paper's budget: every kernel reaching one patch past its own


@dataclass(frozen=True)
class LayerPlan:
    """How one convolution is converted: its name, the input sizes seen, patch and heads."""

    name: str
    input_sizes: tuple[tuple[int, int], ...]
    patch_size: int
    num_heads: int


def patch_candidates(conv: nn.Conv2d, sizes: tuple[tuple[int, int], ...]) -> list[int]:
    """Patch sizes dividing every seen input size and a multiple of both strides."""
    smallest = min(min(s) for s in sizes)
    return [P for P in range(1, smallest + 1)
            if all(h % P == 0 and w % P == 0 for h, w in sizes)
            and P % conv.stride[0] == 0 and P % conv.stride[1] == 0]


def choose_patch_size(conv: nn.Conv2d, sizes: tuple[tuple[int, int], ...],
                      max_heads: int = DEFAULT_MAX_HEADS) -> int:
    """The smallest admissible patch size needing at most ``max_heads`` heads; when none
    does, the one with the fewest heads (the smallest such on ties).

    Raises:
        ValueError: if no patch size divides the input and is a multiple of the stride.
    """
    candidates = patch_candidates(conv, sizes)
    if not candidates:
        raise ValueError(f"no patch size divides the input sizes {sizes} and is a multiple "
                         f"of stride={conv.stride}")
    heads = {P: conv_geometry(conv, P).num_heads for P in candidates}
    within = [P for P in candidates if heads[P] <= max_heads]
    return within[0] if within else min(candidates, key=lambda P: (heads[P], P))


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
) -> tuple[LayerPlan, ...]:
    """A patch size for every ``nn.Conv2d`` of ``model`` (by module name).

    Args:
        patch_size: one size for every layer, a mapping ``{module name: size}`` overriding
            the choice per layer, or ``None`` to choose each by :func:`choose_patch_size`
            from the input sizes seen on ``example_input``.
    Raises:
        TypeError: a ``Conv2d`` subclass with its own ``forward`` (named).
        ValueError: a mapping names no convolution, or a layer not reached by
            ``example_input`` has no given patch size.
    """
    _check_patch_size_argument(patch_size)
    if isinstance(max_heads, bool) or not isinstance(max_heads, int) or max_heads < 1:
        raise ValueError(f"max_heads must be a positive int, got {max_heads!r}")
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
    sizes = _record_input_sizes(model, example_input, convs)
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
            P = choose_patch_size(conv, seen, max_heads)
        plans.append(LayerPlan(name, seen, P, conv_geometry(conv, P).num_heads))
    return tuple(plans)


def convert_model(
    model: nn.Module,
    example_input: torch.Tensor,
    patch_size: int | Mapping[str, int] | None = None,
    *,
    alpha: float | None = None,
    max_heads: int = DEFAULT_MAX_HEADS,
    key_dim: int | None = None,
) -> nn.Module:
    """A copy of ``model`` with every ``nn.Conv2d`` replaced by ``as_attention`` of it.

    ``key_dim`` (query/key width per head) defaults to 1 with hard masks (``alpha=None``:
    each head's mask keeps one key, so its scores can never change the output and wider
    zero queries and keys would only cost memory) and to 8 with a finite gap, where the
    scores are trainable.

    The patch size of each layer is chosen by :func:`plan_conversion` (see there for
    ``patch_size`` and ``max_heads``, which guides the choice but never refuses a layer).
    Shared convolutions stay shared. The original model is not modified, not even run.
    The returned copy carries its plan as ``conversion_plan``.
    """
    converted = copy.deepcopy(model)
    plans = plan_conversion(converted, example_input, patch_size, max_heads=max_heads)
    width = key_dim if key_dim is not None else (1 if alpha is None else DEFAULT_KEY_DIM)
    modules = dict(converted.named_modules())
    replacement = {}
    for plan in plans:
        conv = modules[plan.name]
        attn = as_attention(conv, plan.patch_size, alpha=alpha, key_dim=width)
        replacement[id(conv)] = attn.train(conv.training)
    if id(converted) in replacement:  # the model is itself a single convolution
        converted = replacement[id(converted)]
    for parent in list(converted.modules()):
        # _modules, not named_children(): the latter skips a module's second reference.
        for child_name, child in list(parent._modules.items()):
            if child is not None and id(child) in replacement:
                setattr(parent, child_name, replacement[id(child)])
    converted.conversion_plan = plans
    return converted
