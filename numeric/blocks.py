"""The block matrices ``M_delta`` of a real kernel, and their split into value/output weights.

``theory.construction.block_taps`` says which tap sits where; this module fills in the
weights (DESIGN 3.2). Each head ``h`` needs ``W_V^h W_O^h = M_{delta_h}``, which takes a
value width of at least ``rank(M_{delta_h})``; :func:`factorize` achieves exactly that.
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


def numerical_rank(M: torch.Tensor) -> int:
    """Singular values above ``max(shape) * eps * sigma_max`` (0 for a zero matrix)."""
    if not M.numel():
        return 0
    S = torch.linalg.svdvals(M)
    return int((S > max(M.shape) * torch.finfo(M.dtype).eps * S[0]).sum())


@dataclass(frozen=True)
class Factorization:
    """``value @ output == M`` up to ``residual`` (max abs entry of the difference)."""

    value: torch.Tensor   # (d_in, r)
    output: torch.Tensor  # (r, d_out)
    rank: int
    residual: float


def pivot_rows(M: torch.Tensor, rank: int) -> list[int]:
    """``rank`` rows of ``M`` spanning its row space, chosen greedily by largest residual
    norm (Gram-Schmidt with pivoting). Near-ties (within a relative 1e-9) go to the lowest
    index, so rounding differences between machines or thread counts cannot change the
    choice."""
    residual = M.clone()
    chosen: list[int] = []
    for _ in range(rank):
        norms = residual.norm(dim=1)
        norms[chosen] = -1.0
        best = int(torch.nonzero(norms >= (1 - 1e-9) * norms.max())[0])
        chosen.append(best)
        q = residual[best] / residual[best].norm()
        residual = residual - residual @ q[:, None] * q[None, :]
    return chosen


def factorize(M: torch.Tensor) -> Factorization:
    """Split ``M`` into ``value @ output`` with inner width ``rank(M)``, deterministically.

    The rank keeps singular values above ``max(shape) * eps * sigma_max`` (the usual
    numerical rank). Full-rank matrices are split exactly with an identity factor;
    rank-deficient ones keep ``rank`` pivot rows of ``M`` as the output factor (actual
    kernel weights) and solve for the value factor. Unlike an SVD, whose singular vectors
    are fixed only up to signs and rotations, this gives the same factors on every machine
    and thread count (up to rounding), which reproducible training after conversion needs.
    Returns float64 factors; the caller casts them to the layer's dtype.
    """
    M = M.to(torch.float64)
    d_in, d_out = M.shape
    rank = numerical_rank(M)
    if rank == d_in:
        value, output = torch.eye(d_in, dtype=M.dtype, device=M.device), M
    elif rank == d_out:
        value, output = M, torch.eye(d_out, dtype=M.dtype, device=M.device)
    else:
        output = M[pivot_rows(M, rank)]                                   # (r, d_out)
        value = torch.linalg.lstsq(output.T, M.T).solution.T              # (d_in, r)
    residual = float((value @ output - M).abs().max()) if M.numel() else 0.0
    return Factorization(value, output, rank, residual)
