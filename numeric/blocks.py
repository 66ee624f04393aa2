"""The block matrices ``M_delta`` of a real kernel, and their split into value/output weights.

``vitconv.theory.construction.block_taps`` says which tap sits where; this module fills in the
weights (docs/theory.md §3.2). Each head ``h`` needs ``W_V^h W_O^h = M_{delta_h}``, which takes a
value width of at least ``rank(M_{delta_h})``; :func:`factorize` splits each block exactly
with the width its nonzero pattern allows (often the rank for generic kernels, not always).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vitconv.numeric.grouped_linear import GroupedShape
from vitconv.theory.construction import block_taps
from vitconv.theory.geometry import ConvGeometry


@dataclass(frozen=True)
class Block:
    """``M_delta`` of one offset per channel group, stored on the rows and columns its taps
    reach; every other entry is zero: ``dense()[..., rows[:, None], cols] == matrix``.
    ``matrix`` may be a view of the kernel (a block of one tap): read it, never write it.

    A strided kernel's taps read only some pixels of a patch (a 1x1 kernel of stride 2 on
    patches of 2: one of four), so the stored part can be far smaller than the block."""

    matrix: torch.Tensor    # ([G,] len(rows), len(cols))
    rows: torch.Tensor      # (len(rows),) int64, increasing: positions in the input token
    cols: torch.Tensor      # (len(cols),) int64, increasing: positions in the output token
    shape: tuple[int, int]  # (d_in, d_out) of the whole block (of one group)

    @classmethod
    def of(cls, M: torch.Tensor) -> Block:
        """A dense ``([G,] d_in, d_out)`` matrix as a block on all its rows and columns."""
        d_in, d_out = M.shape[-2:]
        return cls(M, torch.arange(d_in, device=M.device), torch.arange(d_out, device=M.device),
                   (d_in, d_out))

    def dense(self) -> torch.Tensor:
        """``([G,] d_in, d_out)``, zeros outside ``rows`` x ``cols``."""
        M = self.matrix.new_zeros(*self.matrix.shape[:-2], *self.shape)
        M[..., self.rows[:, None], self.cols[None, :]] = self.matrix
        return M


def offset_blocks(weight: torch.Tensor, geom: ConvGeometry) -> dict[tuple[int, int], Block]:
    """``M_delta`` per channel group as :class:`Block` s, on the pixels the taps touch.

    Args:
        weight: the convolution's kernel, ``(C_out, C_in/groups, Kh, Kw)``.
    Returns:
        offset -> :class:`Block` of shape ``(P*P*C_in/groups, P_out_h*P_out_w*C_out/groups)``
        per group (``matrix`` is ``(groups, ., .)``): group ``g``'s diagonal block of
        :func:`block_matrices`, rows and columns in token order ``(pixel, channel of the
        group)`` (``vitconv.numeric.grouped_linear``'s layout). Memory and work are linear
        in the kernel's size times the pixels each offset reads and writes, never
        quadratic in the channel count of a grouped layer, nor spent on the pixels a
        strided kernel skips.
    """
    G = geom.groups
    P, ph, pw = geom.patch_size, geom.rows.out_patch, geom.cols.out_patch
    cout_g, cin_g = weight.shape[0] // G, weight.shape[1]
    per_group = weight.reshape(G, cout_g, cin_g, *weight.shape[2:])
    blocks = {}
    for delta, taps in block_taps(geom).items():
        reads = sorted({bt.in_pixel for bt in taps})
        writes = sorted({bt.out_pixel for bt in taps})
        if len(taps) == 1:  # one tap (every block at P = 1): a view of the kernel, no copy
            tap = taps[0].tap
            M = per_group[:, :, :, tap[0], tap[1]].transpose(1, 2)
        else:
            row_of = {pixel: i for i, pixel in enumerate(reads)}
            col_of = {pixel: j for j, pixel in enumerate(writes)}
            M = weight.new_zeros(G, len(reads), cin_g, len(writes), cout_g)
            for bt in taps:
                M[:, row_of[bt.in_pixel], :, col_of[bt.out_pixel], :] = \
                    per_group[:, :, :, bt.tap[0], bt.tap[1]].transpose(1, 2)
        blocks[delta] = Block(
            M.reshape(G, len(reads) * cin_g, len(writes) * cout_g),
            _positions(reads, P, cin_g, weight.device),
            _positions(writes, pw, cout_g, weight.device),
            (P * P * cin_g, ph * pw * cout_g))
    return blocks


def _positions(pixels: list[tuple[int, int]], width: int, channels: int,
               device: torch.device) -> torch.Tensor:
    """Token positions ``(u * width + v) * channels + c`` of the given pixels' channels,
    increasing when ``pixels`` is sorted."""
    flat = torch.tensor([u * width + v for u, v in pixels], dtype=torch.long, device=device)
    return (flat[:, None] * channels + torch.arange(channels, device=device)).reshape(-1)


def group_blocks(weight: torch.Tensor, geom: ConvGeometry) -> dict[tuple[int, int], torch.Tensor]:
    """:func:`offset_blocks` as dense ``(groups, P*P*C_in/groups,
    P_out_h*P_out_w*C_out/groups)`` tensors, zeros included."""
    return {delta: block.dense() for delta, block in offset_blocks(weight, geom).items()}


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


SIDES = ("output", "value")


def factorize(M: torch.Tensor | Block, selects: str | None = None) -> Factorization:
    """Split ``M`` exactly into ``value @ output`` (docs/theory.md §3.2), one factor a 0/1
    selection and the other entries of ``M``.

    ``M`` may be one matrix ``(d_in, d_out)``, a stack ``(groups, d_in, d_out)`` (the
    per-group blocks of :func:`group_blocks`) or a :class:`Block` (of
    :func:`offset_blocks`: only its stored part is read); a stack is split with one width
    for every group, from the rows and columns nonzero in some group, and the factors are
    stacks too.

    ``selects`` picks the selection: ``"output"`` (``value`` is the ``r`` nonzero columns
    of ``M``, ``output`` selects them back), ``"value"`` (``value`` selects the ``r``
    nonzero rows, ``output`` is those rows), or ``None``: the side with the smaller width
    ``min(#nonzero rows, #nonzero columns)`` (``"output"`` on ties). Every width is at
    least ``rank(M)`` (the least any factorisation needs); the smaller one often equals it
    for a generic kernel, whose nonzero pattern limits the rank, but not always (dilated
    kernels can give blocks of lower rank; docs/theory.md §3.2). The work is linear in the
    stored part of ``M`` and the factor returned (no SVD), the result is the same on every
    machine and thread count, and it keeps ``M``'s dtype and device. ``kept`` is the
    stored matrix itself, not a copy, when it keeps all of the stored part and the stored
    part spans the whole block on the other axis (all rows for ``"output"``, all columns
    for ``"value"``).
    """
    if selects not in (None, *SIDES):
        raise ValueError(f"selects={selects!r} must be None, 'output' or 'value'")
    block = M if isinstance(M, Block) else Block.of(M)
    nonzero = block.matrix != 0
    if nonzero.ndim == 3:
        nonzero = nonzero.any(0)
    local_rows = nonzero.any(1).nonzero().flatten()
    local_cols = nonzero.any(0).nonzero().flatten()
    d_in, d_out = block.shape
    if selects is None:
        selects = "output" if len(local_cols) <= len(local_rows) else "value"
    if selects == "output":                                                  # (d_in, r)
        part = _take(block.matrix, -1, local_cols)
        kept = _spread(part, -2, block.rows, d_in)
        return Factorization(kept, block.cols[local_cols], "output", d_out)
    part = _take(block.matrix, -2, local_rows)                               # (r, d_out)
    kept = _spread(part, -1, block.cols, d_out)
    return Factorization(kept, block.rows[local_rows], "value", d_in)


def _take(matrix: torch.Tensor, dim: int, index: torch.Tensor) -> torch.Tensor:
    """``matrix`` restricted to ``index`` along ``dim``; ``matrix`` itself when that is all."""
    return matrix if len(index) == matrix.shape[dim] else matrix.index_select(dim, index)


def _spread(part: torch.Tensor, dim: int, positions: torch.Tensor, size: int) -> torch.Tensor:
    """``part`` placed at ``positions`` of a zero tensor of ``size`` along ``dim``;
    ``part`` itself when the positions are all of them."""
    if len(positions) == size:
        return part
    shape = list(part.shape)
    shape[dim] = size
    return part.new_zeros(shape).index_copy_(dim % part.ndim, positions, part)
