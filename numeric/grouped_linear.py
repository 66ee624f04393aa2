"""A linear map that is block diagonal over channel groups, stored without its zeros.

A grouped or depthwise convolution never mixes channels of different groups, so the value
and output weights of its attention form (``W_V^h W_O^h = M_delta``, docs/theory.md §3.2)
are zero between groups. Stored densely they grow with the square of the channel count
(a depthwise layer of 1152 channels would hold 1152 x 1152 matrices that are almost all
zeros); :class:`GroupedLinear` keeps one small matrix per group instead, so memory and
work are linear in the convolution's weights.

Layout. A feature vector of length ``n * groups * c`` is read as ``(n, groups, c)``, the
group in the middle: for a patch token ``n`` is the pixels of the patch and ``c`` the
channels of one group, which is exactly the project's token order ``(u, v, channel)``
(docs/theory.md §2) since a group's channels are contiguous. Value features use ``c = 1``.
:meth:`GroupedLinear.dense_weight` returns the equivalent dense ``(out, in)`` matrix; as a
map, ``GroupedLinear`` equals ``F.linear`` with it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from vitconv.numeric.selection import Selection, check_input_dtype


@dataclass(frozen=True)
class GroupedShape:
    """``(n, c)`` of a grouped feature vector: ``n`` slots of ``groups`` groups of ``c``."""

    slots: int
    channels: int

    def features(self, groups: int) -> int:
        return self.slots * groups * self.channels

    def index(self, groups: int) -> torch.Tensor:
        """``(groups, slots * channels)``: where each group's entries sit in the vector."""
        n, c = self.slots, self.channels
        slot = torch.arange(n).repeat_interleave(c)               # (n*c,)
        channel = torch.arange(c).repeat(n)
        group = torch.arange(groups)[:, None]
        return slot[None] * (groups * c) + group * c + channel[None]


SMALL_FAN_IN = 16  # inputs per group below which broadcast products beat a batched matmul


class GroupedLinear(nn.Module):
    """``y = x W^T + b`` with ``W`` block diagonal over ``groups`` channel groups.

    Args:
        groups: number of channel groups.
        in_shape, out_shape: the :class:`GroupedShape` of the input and output vectors.

    Parameters: ``weight`` ``(groups, out_slots*out_c, in_slots*in_c)`` (one matrix per
    group, in the ``nn.Linear`` orientation) and ``bias`` ``(out_features,)``. Each output
    entry is a sum of ``in_slots * in_c`` products (not ``in_features``): rounding bounds
    count terms per group. Forward maps ``(..., in_features)`` to ``(..., out_features)``.
    """

    def __init__(self, groups: int, in_shape: GroupedShape, out_shape: GroupedShape, *,
                 bias: bool = True, device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        if groups < 1:
            raise ValueError(f"groups must be >= 1, got {groups}")
        self.groups, self.in_shape, self.out_shape = groups, in_shape, out_shape
        self.in_features = in_shape.features(groups)
        self.out_features = out_shape.features(groups)
        fan_in = in_shape.slots * in_shape.channels
        fan_out = out_shape.slots * out_shape.channels
        kw = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty(groups, fan_out, fan_in, **kw))
        self.bias = nn.Parameter(torch.empty(self.out_features, **kw)) if bias else None
        bound = 1 / fan_in**0.5 if fan_in else 0.0
        nn.init.uniform_(self.weight, -bound, bound)  # nn.Linear's default, per group
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"groups={self.groups}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input_dtype(x, self.weight.dtype, "weights'")
        lead = x.shape[:-1]
        rows = math.prod(lead)  # explicit, not -1: an empty batch must work too
        G, (n, c) = self.groups, (self.in_shape.slots, self.in_shape.channels)
        m, co = self.out_shape.slots, self.out_shape.channels
        if n * c <= SMALL_FAN_IN:
            # Few inputs per group (depthwise layers): accumulate n*c broadcast products in
            # the output's own layout; a batched matmul of G tiny matrices is far slower.
            xs = x.reshape(rows, n, G, c)
            w = self.weight.view(G, m, co, n, c)
            y = x.new_zeros(rows, m, G, co)  # no input at all (width 0): a zero map
            for i in range(n):
                for j in range(c):
                    term = xs[:, i, None, :, j, None] * w[:, :, :, i, j].transpose(0, 1)
                    y = term if i == j == 0 else y + term                  # (rows, m, G, co)
            y = y.reshape(*lead, self.out_features)
        else:
            per_group = x.reshape(rows, n, G, c).permute(2, 0, 1, 3).reshape(G, rows, n * c)
            y = torch.bmm(per_group, self.weight.transpose(1, 2))          # (G, rows, m*co)
            y = y.view(G, rows, m, co).permute(1, 2, 0, 3).reshape(*lead, self.out_features)
        return y if self.bias is None else y + self.bias

    def dense_weight(self) -> torch.Tensor:
        """The equivalent dense ``(out_features, in_features)`` matrix (zeros across groups;
        for small layers: checks and proofs)."""
        W = self.weight.new_zeros(self.out_features, self.in_features)
        rows = self.out_shape.index(self.groups).to(W.device)
        cols = self.in_shape.index(self.groups).to(W.device)
        for g in range(self.groups):
            W[rows[g][:, None], cols[g][None, :]] = self.weight[g]
        return W


def weight_matrix(layer: nn.Module) -> torch.Tensor:
    """The dense ``(out, in)`` weight of an ``nn.Linear``, a :class:`GroupedLinear` or a
    :class:`~numeric.selection.Selection`."""
    if isinstance(layer, GroupedLinear | Selection):
        return layer.dense_weight()
    if isinstance(layer, nn.Linear):
        return layer.weight
    raise TypeError(f"expected nn.Linear, GroupedLinear or Selection, got "
                    f"{type(layer).__name__}")


@dataclass(frozen=True)
class ChannelGroups:
    """How an attention layer's tokens split into channel groups: ``groups`` groups of the
    ``in_channels`` per input pixel and of the ``out_channels`` per output pixel (a grouped
    convolution's ``groups``, ``C_in``, ``C_out``)."""

    groups: int
    in_channels: int
    out_channels: int

    def __post_init__(self) -> None:
        if self.groups < 1 or self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"groups={self.groups} must be >= 1 and divide in_channels="
                             f"{self.in_channels} and out_channels={self.out_channels}")
