"""Floating-point error bounds, the only source of numeric tolerances in the project.

Standard rounding analysis (Higham, *Accuracy and Stability of Numerical Algorithms*, 3.1):
a sum of ``n`` products computed in any order in a precision with unit roundoff ``u``
is off by at most ``gamma_n * sum |a_i b_i|`` with ``gamma_n = n u / (1 - n u)``.
Every comparison in the tests and in ``vitconv verify`` passes when the observed error is
at most the sum of the two sides' bounds; the ratio error/bound is reported.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from vitconv.numeric.blocks import block_matrices
from vitconv.numeric.conv_attention import ConstructionRecord
from vitconv.numeric.convertible import conv_geometry
from vitconv.numeric.patches import frame_image, patchify, unpatchify
from vitconv.theory.geometry import ConvGeometry


def unit_roundoff(dtype: torch.dtype) -> float:
    """``u = eps/2`` of a floating dtype."""
    return torch.finfo(dtype).eps / 2


def gamma(n: int, dtype: torch.dtype) -> float:
    """``gamma_n = n u / (1 - n u)`` (requires ``n u < 1``)."""
    nu = n * unit_roundoff(dtype)
    if nu >= 1:
        raise ValueError(f"gamma_{n} is undefined in {dtype} (n*u >= 1)")
    return nu / (1 - nu)


def conv_terms(conv: nn.Conv2d) -> int:
    """Terms in one output of ``conv``: ``C_in/groups * Kh * Kw`` products plus the bias."""
    return conv.in_channels // conv.groups * conv.kernel_size[0] * conv.kernel_size[1] + 1


@torch.no_grad()
def absolute_conv(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``|w| * |x| + |b|`` in float64 (the convolution with every sign made positive)."""
    positive = copy.deepcopy(conv).to(torch.float64)
    positive.weight.abs_()
    if positive.bias is not None:
        positive.bias.abs_()
    return positive(x.to(torch.float64).abs())


def conv_error_bound(conv: nn.Conv2d, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Elementwise bound on the rounding error of ``conv(x)`` computed in ``dtype``."""
    return gamma(conv_terms(conv), dtype) * absolute_conv(conv, x)


def _offset_sum(tokens: torch.Tensor, window: tuple[int, int, int, int],
                blocks: dict[tuple[int, int], torch.Tensor]) -> torch.Tensor:
    """``sum_delta tokens[q + delta] @ blocks[delta]`` for every query ``q`` of ``window``:
    ``(B, height, width, d_out)``."""
    top, left, hq, wq = window
    total = None
    for (da, db), block in blocks.items():
        keys = tokens[:, top + da:top + da + hq, left + db:left + db + wq]  # (B, hq, wq, d_in)
        term = keys @ block
        total = term if total is None else total + term
    return total


def _bias_tokens(conv: nn.Conv2d, geometry: ConvGeometry) -> torch.Tensor:
    """``|beta|``: the bias magnitudes tiled over the output pixels of a patch, float64."""
    pixels = geometry.rows.out_patch * geometry.cols.out_patch
    if conv.bias is None:
        return torch.zeros(pixels * conv.out_channels, dtype=torch.float64)
    return conv.bias.detach().to(torch.float64).cpu().abs().repeat(pixels)


def _check_record(attn: nn.Module, conv: nn.Conv2d) -> ConstructionRecord:
    record = getattr(attn, "construction", None)
    if not isinstance(record, ConstructionRecord):
        raise TypeError("attn has no ConstructionRecord: only layers built by as_attention "
                        "have a rounding bound")
    if conv_geometry(conv, record.geometry.patch_size) != record.geometry \
            or conv.padding_mode != record.padding_mode:
        raise ValueError("conv is not the convolution this layer was constructed from "
                         "(its geometry or padding mode differs)")
    return record


@torch.no_grad()
def attention_error_bound(attn: nn.Module, conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """Elementwise bound on the rounding error of ``attn(x)``, where ``attn`` was built from
    ``conv`` by the construction (docs/theory.md §3.2.1).

    The bound reads only ``attn.construction`` (the frozen record: heads, gap, value
    widths, support), the kernel of ``conv``, the input and its dtype: never a weight or a
    residual measured on the layer, so a wrong layer cannot widen its own bound.

    Hard heads (``support == 1``): the factors are exact (``vitconv.numeric.blocks.factorize``)
    and ``A^h`` is exactly 0 or 1, so the only rounding is in the products, at most
    ``gamma_n (|w| * |x| + |b|)`` (the convolution with every sign made positive) with
    ``n = (d_in + R)/g + 3``, ``R`` the total value width, ``g`` the channel groups of the
    value and output weights. Heads that mix ``s`` offsets with
    probabilities ``p`` (the minimal construction, ``W_V^h W_O^h = W^h`` of its exact
    decomposition) add the softmax: ``n += s + 4 + ceil(max |log p|)``, and the absolute
    run weights each offset by its probability: ``sum_delta |x_{q+delta}| sum_h p_h(delta)
    |W^h|``. A finite gap ``alpha`` spreads every head over all keys of the framed grid:
    ``n += #keys + 4 + ceil(alpha)`` and each head's term is ``max_k |x_k| |M_{delta_h}|``.
    This bounds rounding only: the gap's own error is ``vitconv.numeric.evidence.gap``'s concern.

    Raises:
        TypeError: ``attn`` carries no construction record.
        ValueError: ``conv`` is not the convolution ``attn`` was built from.
    """
    record = _check_record(attn, conv)
    geometry, dtype = record.geometry, x.dtype
    n = geometry_terms(record)
    if record.heads == "plan" and record.alpha is None:
        return gamma(n, dtype) * absolute_conv(conv, x)
    x64 = x.detach().to(torch.float64).cpu().abs()
    framed, rows, cols = frame_image(x64, geometry, record.padding_mode)
    tokens = patchify(framed, geometry.patch_size)                      # (B, Gh', Gw', d_in)
    window = (rows.frame_lo, cols.frame_lo, rows.query_tokens, cols.query_tokens)
    kernel = conv.weight.detach().to(torch.float64).cpu().abs()
    if record.alpha is not None:  # a finite gap: every key of the framed grid has weight
        n += tokens.shape[1] * tokens.shape[2] + 4 + math.ceil(record.alpha)
        blocks = block_matrices(kernel, geometry)
        largest = tokens.flatten(1, 2).amax(1)                           # (B, d_in)
        heads = sum(largest @ blocks[delta] for delta in record.head_plan)  # (B, d_out)
        absolute = heads[:, None, None, :].expand(-1, window[2], window[3], -1)
    else:  # the minimal construction: heads mix offsets with probabilities p
        from vitconv.numeric.minimal import minimal_plan  # scipy only for this path

        n += record.support + 4 + math.ceil(record.log_range)
        plan = minimal_plan(conv, geometry.patch_size)
        mixed = torch.einsum("hk,hio->kio", plan.distributions, plan.matrices.abs())
        absolute = _offset_sum(tokens, window, dict(zip(plan.offsets, mixed, strict=True)))
    absolute = absolute + _bias_tokens(conv, geometry)
    image = unpatchify(absolute, (geometry.rows.out_patch, geometry.cols.out_patch),
                       geometry.out_channels)[..., :rows.out_length, :cols.out_length]
    return (gamma(n, dtype) * image).to(x.device)


CONTROL_FACTOR = 3.0  # a negative control perturbs by 3x the first-principles rounding size


def control_perturbation(conv: nn.Conv2d, attn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A perturbation every comparison of ``attn`` with ``conv`` must REJECT (a negative
    control): ``3 (n_att + n_conv) u (|w| * |x| + |b|)`` with the term counts and the unit
    roundoff recomputed here from first principles, not through :func:`gamma`. If a check
    still passes with it, its bound is at least 3x too wide to mean anything."""
    record = _check_record(attn, conv)
    n = geometry_terms(record) + conv_terms(conv)
    return CONTROL_FACTOR * n * (torch.finfo(x.dtype).eps / 2) * absolute_conv(conv, x)


def geometry_terms(record: ConstructionRecord) -> int:
    """``n`` of the construction's hard-head bound: ``(d_in + R) / g + 3``, with ``g`` the
    channel groups of the value and output weights (each output of a block-diagonal
    product sums over its own group only; ``g = 1`` for dense weights)."""
    return (record.geometry.token_dim_in + sum(record.value_dims)) // record.value_groups + 3


def comparison_ratio(a: torch.Tensor, b: torch.Tensor, bound: torch.Tensor) -> float:
    """``max |a - b| / bound`` elementwise (0/0 counts as 0, x/0 as inf); <= 1 passes."""
    err = (a.to(torch.float64) - b.to(torch.float64)).abs()
    ratio = torch.where(bound > 0, err / bound, torch.where(err > 0, torch.inf, 0.0))
    return float(ratio.max()) if ratio.numel() else 0.0


def reference_bound(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """Bound on the float64 reference's own rounding error."""
    return conv_error_bound(conv, x, torch.float64)

