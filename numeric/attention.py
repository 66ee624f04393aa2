"""Multi-head self-attention of the standard form with a relative-position bias (docs/theory.md §2).

    y_q  = sum_h sum_k A^h_qk (x_k W_V^h + b_V^h) W_O^h + b_O
    A^h  = softmax_k( (x_q W_Q^h + b_Q^h)(x_k W_K^h + b_K^h)^T / sqrt(d_k) + B^h[k - q] )

Positions enter the scores only, through the table ``B^h`` (the T5 / Swin form), never the
values; the lower bounds of docs/theory.md §3.3 rely on that. Heads may have different value widths
(the construction gives head ``h`` the rank of its ``M_delta``). The module is an ordinary
trainable layer: the construction (``numeric.conv_attention``) only sets its weights.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

Window = tuple[int, int, int, int]  # (top, left, height, width) on the token grid


class RelativeMultiheadAttention(nn.Module):
    """Self-attention over a ``Gh x Gw`` grid of tokens with a relative-position bias.

    Args:
        dim_in: token length ``d_in``.
        dim_out: output token length ``d_out``.
        value_dims: value width of each head (their number is the number of heads).
        key_dim: query/key width per head, ``d_k``.
        offset_range: ``((lo_h, hi_h), (lo_w, hi_w))``, the relative offsets the bias table
            stores; offsets beyond it use the border entry (clipping, as in Shaw et al.).

    Besides the learnable table ``rel_bias`` (``(H, hi_h-lo_h+1, hi_w-lo_w+1)``), the buffer
    ``rel_mask`` marks offsets a head may attend to; a masked score is ``-inf`` (hard
    attention). A query row with every key masked is refused, since softmax would be NaN.
    """

    def __init__(
        self,
        dim_in: int,
        dim_out: int,
        value_dims: Sequence[int],
        key_dim: int = 8,
        offset_range: tuple[tuple[int, int], tuple[int, int]] = ((-1, 1), (-1, 1)),
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if isinstance(key_dim, bool) or not isinstance(key_dim, int) or key_dim < 1:
            raise ValueError(f"key_dim must be a positive int, got {key_dim!r} (a width of 0 "
                             "makes every score 0/0)")
        if not value_dims:
            raise ValueError("value_dims must name at least one head")
        if any(d < 0 for d in value_dims):
            raise ValueError(f"value_dims must be >= 0, got {tuple(value_dims)}")
        (lo_h, hi_h), (lo_w, hi_w) = offset_range
        if lo_h > hi_h or lo_w > hi_w:
            raise ValueError(f"offset_range={offset_range} is empty")
        kw = {"device": device, "dtype": dtype}
        self.value_dims = tuple(int(d) for d in value_dims)
        self.key_dim = key_dim
        self.offset_range = ((lo_h, hi_h), (lo_w, hi_w))
        heads = len(self.value_dims)
        self.query = nn.Linear(dim_in, heads * key_dim, **kw)
        self.key = nn.Linear(dim_in, heads * key_dim, **kw)
        self.value = nn.Linear(dim_in, sum(self.value_dims), **kw)
        self.output = nn.Linear(sum(self.value_dims), dim_out, **kw)
        table = (heads, hi_h - lo_h + 1, hi_w - lo_w + 1)
        self.rel_bias = nn.Parameter(torch.zeros(table, **kw))
        self.register_buffer("rel_mask", torch.ones(table, dtype=torch.bool, device=device))

    @property
    def num_heads(self) -> int:
        return len(self.value_dims)

    def relative_bias(self, grid: tuple[int, int], window: Window) -> torch.Tensor:
        """``B^h[k - q]`` for every query of ``window`` and key of ``grid``: ``(H, Nq, Nk)``.

        Masked offsets are ``-inf``. Raises ``ValueError`` if some query has no key left.
        """
        (lo_h, hi_h), (lo_w, hi_w) = self.offset_range
        top, left, hq, wq = window
        dev = self.rel_bias.device
        qr = torch.arange(top, top + hq, device=dev).repeat_interleave(wq)  # (Nq,)
        qc = torch.arange(left, left + wq, device=dev).repeat(hq)
        kr = torch.arange(grid[0], device=dev).repeat_interleave(grid[1])  # (Nk,)
        kc = torch.arange(grid[1], device=dev).repeat(grid[0])
        ih = (kr[None, :] - qr[:, None]).clamp(lo_h, hi_h) - lo_h  # (Nq, Nk)
        iw = (kc[None, :] - qc[:, None]).clamp(lo_w, hi_w) - lo_w
        allowed = self.rel_mask[:, ih, iw]  # (H, Nq, Nk)
        if not allowed.any(-1).all():
            h = int((~allowed.any(-1)).any(-1).nonzero()[0])
            raise ValueError(f"head {h} masks every key of some query on a {grid} grid: "
                             "the frame is too small for its offset (softmax would be NaN)")
        # A gather, not rel_bias[:, ih, iw]: the backward of advanced indexing accumulates
        # in a thread-dependent order on CPU (bitwise different gradients from run to run);
        # gather's backward, scatter_add, is deterministic there.
        H, width = self.rel_bias.shape[0], self.rel_bias.shape[2]
        index = (ih * width + iw).reshape(1, -1).expand(H, -1)  # (H, Nq*Nk)
        bias = self.rel_bias.reshape(H, -1).gather(1, index).view(H, *ih.shape)
        return bias.masked_fill(~allowed, float("-inf"))

    def attention_weights(self, x: torch.Tensor, window: Window | None = None) -> torch.Tensor:
        """The attention matrices ``A^h``: ``(B, H, Nq, Nk)``, rows summing to 1."""
        B, Gh, Gw, d_in = x.shape  # explicit sizes, not -1: an empty batch must work too
        window = window or (0, 0, Gh, Gw)
        top, left, hq, wq = window
        keys = x.reshape(B, Gh * Gw, d_in)                                     # (B, Nk, d_in)
        queries = x[:, top:top + hq, left:left + wq].reshape(B, hq * wq, d_in)  # (B, Nq, d_in)
        H, dk = self.num_heads, self.key_dim
        q = self.query(queries).view(B, hq * wq, H, dk).transpose(1, 2)        # (B, H, Nq, dk)
        k = self.key(keys).view(B, Gh * Gw, H, dk).transpose(1, 2)             # (B, H, Nk, dk)
        scores = q @ k.transpose(-1, -2) / math.sqrt(dk)                       # (B, H, Nq, Nk)
        scores = scores + self.relative_bias((Gh, Gw), window)
        return scores.softmax(dim=-1)

    def forward(self, x: torch.Tensor, window: Window | None = None) -> torch.Tensor:
        """Attend from the queries in ``window`` to every token of ``x``.

        Args:
            x: ``(B, Gh, Gw, d_in)`` tokens on a grid (the keys, and the queries' source).
            window: ``(top, left, height, width)`` of the query tokens; default all.
        Returns:
            ``(B, height, width, d_out)``.
        """
        B, Gh, Gw, _ = x.shape
        _, _, hq, wq = window or (0, 0, Gh, Gw)
        attn = self.attention_weights(x, window)                              # (B, H, Nq, Nk)
        values = self.value(x.reshape(B, Gh * Gw, x.shape[-1]))                 # (B, Nk, sum dv)
        H, width = self.num_heads, self.value_dims[0]
        if all(d == width for d in self.value_dims):  # equal widths: one batched product
            v = values.view(B, Gh * Gw, H, width).transpose(1, 2)              # (B, H, Nk, dv)
            mixed = (attn @ v).transpose(1, 2).reshape(B, hq * wq, H * width)  # (B, Nq, H*dv)
        else:  # unbind, not attn[:, h]: its backward is one stack, not H zero-filled copies
            mixed = torch.cat([a @ v for a, v in zip(attn.unbind(1),
                                                     values.split(self.value_dims, -1),
                                                     strict=True)], dim=-1)   # (B, Nq, sum dv)
        y = self.output(mixed)                                                 # (B, Nq, d_out)
        return y.reshape(B, hq, wq, y.shape[-1])

    @torch.no_grad()
    def select_offsets(
        self, offsets: Sequence[tuple[int, int]], alpha: float | None = None
    ) -> None:
        """Make head ``h`` attend to relative offset ``offsets[h]`` (hard attention,
        docs/theory.md §2).

        ``alpha=None``: every other offset is masked (``-inf``), so ``A^h`` is exactly 1 on
        the target key. A finite ``alpha > 0``: no mask, the target scores 0 and every other
        key ``-alpha`` (the softmax-gap version of docs/theory.md §3.4); queries and keys are left
        as they are, so content-free scores need ``W_Q = W_K = 0`` set separately.
        """
        if len(offsets) != self.num_heads:
            raise ValueError(f"{len(offsets)} offsets for {self.num_heads} heads")
        if alpha is not None and not (math.isfinite(alpha) and alpha > 0):
            raise ValueError(f"alpha={alpha} must be a finite positive score gap, or None")
        (lo_h, hi_h), (lo_w, hi_w) = self.offset_range
        for h, (da, db) in enumerate(offsets):
            # Targets must lie strictly inside the table: clipped far offsets share the
            # border entries, which must never be a target.
            if not (lo_h < da < hi_h and lo_w < db < hi_w):
                raise ValueError(f"offset {(da, db)} of head {h} is not strictly inside "
                                 f"offset_range={self.offset_range}")
            target = (h, da - lo_h, db - lo_w)
            if alpha is None:
                self.rel_bias[h] = 0.0
                self.rel_mask[h] = False
                self.rel_mask[target] = True
            else:
                self.rel_bias[h] = -alpha
                self.rel_bias[target] = 0.0
                self.rel_mask[h] = True

    @torch.no_grad()
    def set_distributions(self, offsets: Sequence[tuple[int, int]],
                          probabilities: torch.Tensor) -> None:
        """Make head ``h`` attend to ``offsets[i]`` with probability ``probabilities[h, i]``.

        The bias table holds ``log p`` at those offsets and every other offset is masked, so
        a content-free head's softmax returns exactly these probabilities (up to rounding).
        Rows must be probability vectors; zero entries are masked too.
        """
        if probabilities.shape != (self.num_heads, len(offsets)):
            raise ValueError(f"probabilities must have shape ({self.num_heads}, "
                             f"{len(offsets)}), got {tuple(probabilities.shape)}")
        if (probabilities < 0).any() or not torch.allclose(
                probabilities.sum(1), torch.ones(self.num_heads, dtype=probabilities.dtype)):
            raise ValueError("every row of probabilities must be a probability vector")
        (lo_h, hi_h), (lo_w, hi_w) = self.offset_range
        for da, db in offsets:
            if not (lo_h < da < hi_h and lo_w < db < hi_w):
                raise ValueError(f"offset {(da, db)} is not strictly inside "
                                 f"offset_range={self.offset_range}")
        self.rel_bias.zero_()
        self.rel_mask.fill_(False)
        for h in range(self.num_heads):
            for (da, db), p in zip(offsets, probabilities[h].tolist(), strict=True):
                if p > 0:
                    self.rel_mask[h, da - lo_h, db - lo_w] = True
                    self.rel_bias[h, da - lo_h, db - lo_w] = math.log(p)
