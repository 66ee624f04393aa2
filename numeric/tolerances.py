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

from numeric.patches import frame_image, patchify


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


@torch.no_grad()
def attention_error_bound(attn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Elementwise bound on the rounding error of a content-free :class:`ConvAttention`.

    Hard heads (``support == 1``): ``A^h`` is exactly 0 or 1, so head ``h`` computes
    ``(x_{q+delta_h} W_V^h) W_O^h + b_O`` and the error is at most
    ``gamma_n (sum_h |x_{q+delta_h}| |W_V^h| |W_O^h| + |b_O|)`` with ``n = d_in + r + 3``: two
    products of lengths ``d_in`` and ``r = sum of value widths``, the bias addition, and the
    rounding of the float64 factors to the layer's dtype (+2). Heads that mix ``s`` offsets
    with probabilities ``p`` (the minimal construction) add the softmax: the sum of ``s``
    exponentials, the division, and ``exp(fl(log p))``, whose relative error is
    ``|log p| u``: ``n += s + 4 + ceil(max |log p|)``; the absolute run then weights each key
    by its probability. A finite gap ``alpha`` is the same with every key of the framed
    grid in the support and ``|log p| <= alpha``. This bounds rounding only: the gap's own
    error is ``numeric.gap``'s concern. Factorisation residuals (float64) add
    ``residual_per_l1 * max_k ||x_k||_1``.
    """
    att = attn.attention
    positive = copy.deepcopy(attn).to(torch.float64)
    positive.check_input = False
    for layer in (positive.attention.value, positive.attention.output):
        layer.weight.abs_()
        layer.bias.abs_()
    x64 = x.to(torch.float64).abs()
    framed, _, _ = frame_image(x64, attn.geometry, attn.padding_mode)
    n = att.value.in_features + att.value.out_features + 3
    if attn.alpha is not None:  # a finite gap: every key of the framed grid has weight
        n += framed.shape[-2] * framed.shape[-1] // attn.patch_size**2 + 4
        n += math.ceil(attn.alpha)
    elif attn.support > 1:
        n += attn.support + 4 + math.ceil(attn.log_range)
    bound = gamma(n, att.value.weight.dtype) * positive(x64)
    token_l1 = patchify(framed, attn.patch_size).sum(-1).max()
    return bound + attn.residual_per_l1 * token_l1


def comparison_ratio(a: torch.Tensor, b: torch.Tensor, bound: torch.Tensor) -> float:
    """``max |a - b| / bound`` elementwise (0/0 counts as 0, x/0 as inf); <= 1 passes."""
    err = (a.to(torch.float64) - b.to(torch.float64)).abs()
    ratio = torch.where(bound > 0, err / bound, torch.where(err > 0, torch.inf, 0.0))
    return float(ratio.max()) if ratio.numel() else 0.0


def reference_bound(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """Bound on the float64 reference's own rounding error."""
    return conv_error_bound(conv, x, torch.float64)

