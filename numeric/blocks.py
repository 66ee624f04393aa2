"""The block matrices ``M_delta`` of a real kernel, and their split into value/output weights.

``theory.construction.block_taps`` says which tap sits where; this module fills in the
weights (docs/theory.md §3.2). Each head ``h`` needs ``W_V^h W_O^h = M_{delta_h}``, which takes a
value width of at least ``rank(M_{delta_h})``; :func:`factorize` splits each block exactly
with the width its nonzero pattern allows (equal to the rank for generic kernels).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from theory.construction import block_taps
from theory.geometry import ConvGeometry


def dense_weight(weight: torch.Tensor, groups: int) -> torch.Tensor:
    """Grouped kernel ``(C_out, C_in/groups, Kh, Kw)`` as a dense ``(C_out, C_in, Kh, Kw)``
    kernel that is zero between different groups."""
    C_out, cin_g = weight.shape[:2]
    dense = weight.new_zeros(C_out, cin_g * groups, *weight.shape[2:])
    cout_g = C_out // groups
    for g in range(groups):
        dense[g * cout_g:(g + 1) * cout_g, g * cin_g:(g + 1) * cin_g] = \
            weight[g * cout_g:(g + 1) * cout_g]
    return dense


def block_matrices(weight: torch.Tensor, geom: ConvGeometry) -> dict[tuple[int, int], torch.Tensor]:
    """``M_delta`` for every head offset of ``geom``'s plan.

    Args:
        weight: the convolution's kernel, ``(C_out, C_in/groups, Kh, Kw)``.
    Returns:
        offset ``(da, db)`` -> ``(P*P*C_in, P_out_h*P_out_w*C_out)`` matrix, in the token
        order of ``theory.geometry.token_index``, same dtype and device as ``weight``.
    """
    W = dense_weight(weight, geom.groups)
    P, ph, pw = geom.patch_size, geom.rows.out_patch, geom.cols.out_patch
    blocks = {}
    for delta, taps in block_taps(geom).items():
        M = W.new_zeros(P, P, geom.in_channels, ph, pw, geom.out_channels)
        for bt in taps:
            M[bt.in_pixel[0], bt.in_pixel[1], :, bt.out_pixel[0], bt.out_pixel[1], :] = \
                W[:, :, bt.tap[0], bt.tap[1]].T
        blocks[delta] = M.reshape(geom.token_dim_in, geom.token_dim_out)
    return blocks


@dataclass(frozen=True)
class Factorization:
    """``value @ output == M`` exactly, with inner width ``width``.

    One factor is a 0/1 selection matrix and the other holds entries of ``M`` itself, so
    every entry of the product is one entry of ``M`` times 1: the identity holds exactly
    in rationals and in every floating-point format, and the layer's rounding can be
    bounded from the kernel alone (``numeric.tolerances``).
    """

    value: torch.Tensor   # (d_in, width)
    output: torch.Tensor  # (width, d_out)

    @property
    def width(self) -> int:
        return self.value.shape[1]


def factorize(M: torch.Tensor) -> Factorization:
    """Split ``M`` exactly into ``value @ output`` of inner width
    ``min(#nonzero rows, #nonzero columns)`` (docs/theory.md §3.2).

    With ``r`` nonzero columns (no more than the nonzero rows), ``value`` is those columns
    of ``M`` and ``output`` selects them back; otherwise ``value`` selects the nonzero rows
    and ``output`` is those rows. The width is at least ``rank(M)`` (the least any
    factorisation needs) and equals it for the blocks of a generic kernel, whose nonzero
    pattern is what limits the rank. The work is linear in the size of ``M`` (no SVD), the
    result is the same on every machine and thread count, and it keeps ``M``'s dtype and
    device.
    """
    nonzero = M != 0
    rows = nonzero.any(1).nonzero().flatten()
    cols = nonzero.any(0).nonzero().flatten()
    d_in, d_out = M.shape
    if len(cols) <= len(rows):
        value = M[:, cols]                                                   # (d_in, r)
        output = torch.eye(d_out, dtype=M.dtype, device=M.device)[cols]      # (r, d_out)
    else:
        value = torch.eye(d_in, dtype=M.dtype, device=M.device)[:, rows]     # (d_in, r)
        output = M[rows]                                                     # (r, d_out)
    return Factorization(value, output)
