"""The finite softmax gap (docs/theory.md §3.4) measured against its bound.

Per head (``vitconv.theory.softmax_gap``): a head whose target key leads every other of ``n`` keys
by ``alpha`` is off by at most ``(1 - w) max_k |v_k - v_t|`` with
``1 - w = (n-1)/(e^alpha + n - 1)``; equality when every other value is ``v_t + D``.
Per convolution (``as_attention(conv, P, alpha=...)``): the errors of the heads add up.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from vitconv.numeric.blocks import block_matrices
from vitconv.numeric.conv_attention import as_attention
from vitconv.numeric.patches import frame_image, patchify, unpatchify
from vitconv.numeric.tolerances import attention_error_bound, conv_error_bound, gamma
from vitconv.theory.softmax_gap import off_target_mass


@dataclass(frozen=True)
class GapCheck:
    """The worst ``observed / bound`` (<= 1 means the bound held) and the largest error."""

    alpha: float
    max_error: float
    ratio: float
    max_bound: float = float("nan")  # largest bound over the outputs (for plotting)


@torch.no_grad()
def head_gap(values: torch.Tensor, alpha: float, target: int = 0) -> GapCheck:
    """One head over ``n = len(values)`` keys, target scoring ``alpha`` above the rest.

    Args:
        values: ``(n, d)`` float64 value vectors.
    """
    n = values.shape[0]
    scores = torch.full((n,), -alpha, dtype=values.dtype)
    scores[target] = 0.0
    out = scores.softmax(0) @ values
    err = (out - values[target]).abs()
    spread = (values - values[target]).abs().max(0).values
    rounding = gamma(n + 4 + int(alpha) + 1, values.dtype) * (values.abs().max(0).values)
    bound = off_target_mass(n, alpha) * spread + rounding
    return GapCheck(alpha, float(err.max()), float((err / bound).max()), float(bound.max()))


def adversarial_values(n: int, d: int, spread: float, generator: torch.Generator) -> torch.Tensor:
    """Values where the bound is attained: every non-target value is ``v_t + spread``."""
    v_t = torch.randn(d, generator=generator, dtype=torch.float64)
    values = (v_t + spread).repeat(n, 1)
    values[0] = v_t
    return values


@torch.no_grad()
def conv_gap(conv: nn.Conv2d, patch_size: int, alpha: float, x: torch.Tensor) -> GapCheck:
    """``as_attention(conv, alpha=alpha)`` against ``conv`` on ``x`` (float64), each output
    held against ``sum_h (1 - w) max_k |(x_k - x_{t_h}) M_{delta_h}|`` plus rounding; the
    blocks come from the kernel, not from the layer under test."""
    attn = as_attention(conv, patch_size, alpha=alpha)
    framed, rows, cols = frame_image(x, attn.geometry, attn.padding_mode)
    tokens = patchify(framed, patch_size)                                  # (B, Gh, Gw, d_in)
    B, Gh, Gw, _ = tokens.shape
    n = Gh * Gw
    off = off_target_mass(n, alpha)
    bound = torch.zeros(B, rows.query_tokens, cols.query_tokens, attn.geometry.token_dim_out,
                        dtype=torch.float64)
    blocks = block_matrices(conv.weight.detach().to(x.dtype), attn.geometry)
    for da, db in attn.head_plan:
        V = tokens @ blocks[(da, db)]                                       # (B, Gh, Gw, d_out)
        qa = torch.arange(rows.query_tokens) + rows.frame_lo + da
        qb = torch.arange(cols.query_tokens) + cols.frame_lo + db
        target = V[:, qa][:, :, qb]                                        # (B, Gq_h, Gq_w, d_out)
        spread = (V.reshape(B, 1, 1, n, -1) - target[:, :, :, None]).abs().amax(3)
        bound += off * spread
    image_bound = unpatchify(bound, (attn.geometry.rows.out_patch, attn.geometry.cols.out_patch),
                             attn.geometry.out_channels)[..., :rows.out_length, :cols.out_length]
    rounding = attention_error_bound(attn, conv, x) + conv_error_bound(conv, x, x.dtype)
    err = (attn(x) - conv(x)).abs()
    total = image_bound + rounding
    return GapCheck(alpha, float(err.max()), float((err / total).max()), float(total.max()))


def adversarial_pointwise_image(conv: nn.Conv2d, size: int, query: tuple[int, int],
                                channel: int = 0) -> torch.Tensor:
    """For a 1x1 convolution on pixel tokens: an image that attains the gap bound at
    output ``(channel, *query)``: every pixel equals ``sign(w[channel])`` except the query
    pixel, which is 0, so every non-target key differs from the target by the same
    vector, aligned with the output weights."""
    if conv.kernel_size != (1, 1):
        raise ValueError("the adversarial image is built for 1x1 convolutions")
    signs = conv.weight.detach()[channel, :, 0, 0].sign().to(torch.float64)
    x = signs[None, :, None, None].repeat(1, 1, size, size)
    x[0, :, query[0], query[1]] = 0.0
    return x
