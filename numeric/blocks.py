"""The block matrices ``M_delta`` of a real kernel, and their split into value/output weights.

``vitconv.theory.construction.block_taps`` says which tap sits where; this module fills in the
weights (docs/theory.md §3.2). Each head ``h`` needs ``W_V^h W_O^h = M_{delta_h}``, which takes a
value width of at least ``rank(M_{delta_h})``; :func:`factorize` splits each block exactly
with the width its nonzero pattern allows (equal to the rank for generic kernels).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vitconv.numeric.grouped_linear import GroupedShape
from vitconv.theory.construction import block_taps
from vitconv.theory.geometry import ConvGeometry


def group_blocks(weight: torch.Tensor, geom: ConvGeometry) -> dict[tuple[int, int], torch.Tensor]:
    """``M_delta`` per channel group, without the zeros between groups.

    Args:
        weight: the convolution's kernel, ``(C_out, C_in/groups, Kh, Kw)``.
    Returns:
        offset -> ``(groups, P*P*C_in/groups, P_out_h*P_out_w*C_out/groups)``: group ``g``'s
        diagonal block of :func:`block_matrices`, rows and columns in token order
        ``(pixel, channel of the group)`` (``vitconv.numeric.grouped_linear``'s layout). Memory and
        work are linear in the kernel's size times ``P^2 P_out^2``, never quadratic in the
        channel count of a grouped layer.
    """
    G = geom.groups
    P, ph, pw = geom.patch_size, geom.rows.out_patch, geom.cols.out_patch
    cout_g, cin_g = weight.shape[0] // G, weight.shape[1]
    per_group = weight.reshape(G, cout_g, cin_g, *weight.shape[2:])
    blocks = {}
    for delta, taps in block_taps(geom).items():
        M = weight.new_zeros(G, P, P, cin_g, ph, pw, cout_g)
        for bt in taps:
            M[:, bt.in_pixel[0], bt.in_pixel[1], :, bt.out_pixel[0], bt.out_pixel[1], :] = \
                per_group[:, :, :, bt.tap[0], bt.tap[1]].transpose(1, 2)
        blocks[delta] = M.reshape(G, P * P * cin_g, ph * pw * cout_g)
    return blocks


def block_matrices(weight: torch.Tensor, geom: ConvGeometry) -> dict[tuple[int, int], torch.Tensor]:
    """``M_delta`` for every head offset of ``geom``'s plan, as dense matrices (zero between
    channel groups): the per-group blocks of :func:`group_blocks` placed in token order.

    Args:
        weight: the convolution's kernel, ``(C_out, C_in/groups, Kh, Kw)``.
    Returns:
        offset ``(da, db)`` -> ``(P*P*C_in, P_out_h*P_out_w*C_out)`` matrix, in the token
        order of ``vitconv.theory.geometry.token_index``, same dtype and device as ``weight``.
    """
    G = geom.groups
    rows = GroupedShape(geom.patch_size**2, geom.in_channels // G).index(G)
    cols = GroupedShape(geom.rows.out_patch * geom.cols.out_patch,
                        geom.out_channels // G).index(G)
    dense = {}
    for delta, per_group in group_blocks(weight, geom).items():
        M = weight.new_zeros(geom.token_dim_in, geom.token_dim_out)
        for g in range(G):
            M[rows[g][:, None], cols[g][None, :]] = per_group[g]
        dense[delta] = M
    return dense


@dataclass(frozen=True)
class Factorization:
    """``value @ output == M`` exactly, with inner width ``width``.

    One factor is a 0/1 selection matrix and the other holds entries of ``M`` itself, so
    every entry of the product is one entry of ``M`` times 1: the identity holds exactly
    in rationals and in every floating-point format, and the layer's rounding can be
    bounded from the kernel alone (``vitconv.numeric.tolerances``).

    Only the entries of ``M`` are stored (``kept``) with where the selection's ones are
    (``index``); ``value`` and ``output`` form the dense factors on request, so a layer
    that stores the selection as indices (``vitconv.numeric.selection``) never forms it.
    """

    kept: torch.Tensor   # selects == "output": columns ``index`` of M, ([G,] d_in, r);
    #                      selects == "value": rows ``index`` of M, ([G,] r, d_out)
    index: torch.Tensor  # (r,) int64
    selects: str         # the factor that is the selection: "output" or "value"
    size: int            # the selection's other side: d_out ("output") or d_in ("value")
    tied: bool = False   # as many nonzero rows as columns: either side would do

    @property
    def width(self) -> int:
        return len(self.index)

    def _selection(self) -> torch.Tensor:
        lead = self.kept.shape[:-2]
        eye = torch.eye(self.size, dtype=self.kept.dtype, device=self.kept.device)
        chosen = eye[self.index] if self.selects == "output" else eye[:, self.index]
        return chosen.expand(*lead, *chosen.shape)

    @property
    def value(self) -> torch.Tensor:   # (d_in, width), or (groups, d_in, width)
        return self.kept if self.selects == "output" else self._selection()

    @property
    def output(self) -> torch.Tensor:  # (width, d_out), or (groups, width, d_out)
        return self._selection() if self.selects == "output" else self.kept


@dataclass(frozen=True)
class Factors:
    """``value @ output`` given densely, neither a selection (zero-padded factors)."""

    value: torch.Tensor
    output: torch.Tensor
    selects = None

    @property
    def width(self) -> int:
        return self.value.shape[-1]


def factorize(M: torch.Tensor, prefer: str = "output") -> Factorization:
    """Split ``M`` exactly into ``value @ output`` of inner width
    ``min(#nonzero rows, #nonzero columns)`` (docs/theory.md §3.2).

    ``M`` may be one matrix ``(d_in, d_out)`` or a stack ``(groups, d_in, d_out)`` (the
    per-group blocks of :func:`group_blocks`); a stack is split with one width for every
    group, from the rows and columns nonzero in some group, and the factors are stacks too.

    With ``r`` nonzero columns (no more than the nonzero rows), ``value`` is those columns
    of ``M`` and ``output`` selects them back; otherwise ``value`` selects the nonzero rows
    and ``output`` is those rows. The width is at least ``rank(M)`` (the least any
    factorisation needs) and equals it for the blocks of a generic kernel, whose nonzero
    pattern is what limits the rank. The work is linear in the size of ``M`` (no SVD), the
    result is the same on every machine and thread count, and it keeps ``M``'s dtype and
    device. When every column (row) is kept, ``kept`` is ``M`` itself, not a copy. With as
    many nonzero rows as columns (zero width included) either split has the same width;
    ``prefer`` (``"output"`` or ``"value"``: which factor is the selection) decides, and
    ``tied`` records that it did.
    """
    if prefer not in ("output", "value"):
        raise ValueError(f"prefer={prefer!r} must be 'output' or 'value'")
    nonzero = M != 0
    if M.ndim == 3:
        nonzero = nonzero.any(0)
    rows = nonzero.any(1).nonzero().flatten()
    cols = nonzero.any(0).nonzero().flatten()
    d_in, d_out = M.shape[-2:]
    tied = len(cols) == len(rows)
    if len(cols) < len(rows) or (tied and prefer == "output"):
        kept = M if len(cols) == d_out else M[..., cols]                     # (d_in, r)
        return Factorization(kept, cols, "output", d_out, tied)
    kept = M if len(rows) == d_in else M[..., rows, :]                       # (r, d_out)
    return Factorization(kept, rows, "value", d_in, tied)
