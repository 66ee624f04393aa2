"""Per-kernel minimal heads (DESIGN 3.4): a content-free MHSA with ``rho`` or ``rho + 1``
heads that equals a given convolution.

Pipeline: ``M_delta`` (``numeric.blocks``) -> the matrix ``Mat`` with rows
``vec(M_delta)`` -> does its column space hold a strictly positive vector (a linear
program, then an exact certificate from ``theory.minimal_heads``)? -> a basis of
probability vectors ``A`` (``#offsets x H``) with ``Mat = A W`` -> head ``h`` attends with
probabilities ``A[:, h]`` over the plan's offsets (``log`` of them in the bias table, masked
elsewhere), values/outputs ``W_V^h W_O^h = W^h``.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch
from scipy.optimize import linprog
from torch import nn

from numeric.blocks import block_matrices
from numeric.conv_attention import conv_geometry
from numeric.rank import exact_weights
from theory.bounds import span_rows
from theory.exact_rank import exact_rank
from theory.minimal_heads import (
    PositivityCertificate,
    farkas_from_support,
    minimum_heads,
    nonzero_rows,
    verify_positive,
)


@dataclass(frozen=True)
class MinimalPlan:
    """``heads`` probability vectors over ``offsets`` and one ``(d_in, d_out)`` matrix each,
    with ``sum_h distributions[h, delta] * matrices[h] == M_delta`` up to ``residual``."""

    offsets: tuple[tuple[int, int], ...]
    rank: int
    certificate: PositivityCertificate
    distributions: torch.Tensor  # (heads, #offsets), float64, columns of A
    matrices: torch.Tensor       # (heads, d_in, d_out), float64
    residual: float

    @property
    def heads(self) -> int:
        """The minimum number of heads (0 for a zero kernel)."""
        return minimum_heads(self.rank, self.certificate)


def _positive_vector(rows_f: np.ndarray) -> np.ndarray | None:
    """``z`` maximising ``min(M z)`` with ``|z| <= 1``; ``None`` if that minimum is <= 0."""
    n_rows, n_cols = rows_f.shape
    scale = np.abs(rows_f).max() or 1.0
    # variables (z, t): maximise t subject to t - M z <= 0, -1 <= z <= 1, t <= 1
    c = np.zeros(n_cols + 1)
    c[-1] = -1.0
    A_ub = np.hstack([-rows_f / scale, np.ones((n_rows, 1))])
    res = linprog(c, A_ub=A_ub, b_ub=np.zeros(n_rows),
                  bounds=[(-1, 1)] * n_cols + [(None, 1)], method="highs")
    if res.status != 0 or res.x[-1] <= 1e-9:
        return None
    return res.x[:-1]


def _farkas_support(rows_f: np.ndarray) -> list[int] | None:
    """Support of a vertex ``y >= 0``, ``sum y = 1``, ``y^T M = 0`` (if one exists)."""
    n_rows, n_cols = rows_f.shape
    scale = np.abs(rows_f).max() or 1.0
    A_eq = np.vstack([rows_f.T / scale, np.ones((1, n_rows))])
    b_eq = np.zeros(n_cols + 1)
    b_eq[-1] = 1.0
    res = linprog(np.zeros(n_rows), A_eq=A_eq, b_eq=b_eq, bounds=[(0, None)] * n_rows,
                  method="highs-ds")
    if res.status != 0:
        return None
    return [int(i) for i in np.flatnonzero(res.x > 1e-9 * res.x.max())]


def positivity_certificate(conv: nn.Conv2d, patch_size: int
                           ) -> tuple[int, list[int], PositivityCertificate]:
    """Exact ``rho``, the offsets (plan indices) with ``M_delta != 0``, and the exact
    certificate on those rows deciding ``rho`` vs ``rho + 1`` heads.

    Raises:
        RuntimeError: if the linear programs' answer cannot be turned into an exact
            certificate (never observed; it would mean a numerically degenerate kernel).
    """
    all_rows = span_rows(conv_geometry(conv, patch_size), exact_weights(conv))
    active = nonzero_rows(all_rows)
    rows = [all_rows[i] for i in active]
    rank = exact_rank(rows).rank if rows else 0
    if not rows:  # a zero kernel: nothing to attend to
        return 0, active, PositivityCertificate("positive", ())
    rows_f = np.array([[float(v) for v in row] for row in rows])
    z = _positive_vector(rows_f)
    if z is not None:
        exact_z = tuple(Fraction(float(v)) for v in z)
        if verify_positive(rows, exact_z):
            return rank, active, PositivityCertificate("positive", exact_z)
    support = _farkas_support(rows_f)
    cert = farkas_from_support(rows, support) if support else None
    if cert is None:
        raise RuntimeError("could not certify whether the span holds a positive vector")
    return rank, active, cert


def minimal_plan(conv: nn.Conv2d, patch_size: int) -> MinimalPlan:
    """The ``rho`` / ``rho + 1`` head decomposition of ``conv`` on patches of ``patch_size``.

    A zero kernel needs no head; the plan then keeps one head of zero weight so that the
    module stays a valid attention layer (its output is the bias).
    """
    geom = conv_geometry(conv, patch_size)
    offsets = geom.head_plan()
    rank, active, cert = positivity_certificate(conv, patch_size)
    blocks = block_matrices(conv.weight.detach().to(torch.float64).cpu(), geom)
    Mat = torch.stack([blocks[offsets[i]].reshape(-1) for i in active]) if active else None
    d_in, d_out = geom.token_dim_in, geom.token_dim_out
    if Mat is None:
        one_hot = torch.zeros(1, len(offsets), dtype=torch.float64)
        one_hot[0, 0] = 1.0
        return MinimalPlan(offsets, 0, cert, one_hot,
                           torch.zeros(1, d_in, d_out, dtype=torch.float64), 0.0)
    U, _, _ = torch.linalg.svd(Mat, full_matrices=False)
    basis = U[:, :rank]                                               # column space of Mat
    if cert.kind == "positive":
        z = torch.tensor([float(v) for v in cert.vector], dtype=torch.float64)
        rows = span_rows(geom, exact_weights(conv))
        p = torch.tensor([[float(v) for v in rows[i]] for i in active],
                         dtype=torch.float64) @ z
    else:
        p = torch.ones(len(active), dtype=torch.float64)
    p = p / p.min()                               # every entry >= 1, so u_i + 2p > 0 (|u_i| <= 1)
    t = 2.0
    if cert.kind == "positive" and abs(1 + t * float((basis.T @ p).sum())) < 1e-6:
        t = 3.0                                   # keep the shifted basis independent
    columns = [basis[:, i] + t * p for i in range(rank)]
    if cert.kind == "farkas":
        columns.append(p)
    A = torch.stack(columns, dim=1)
    A = A / A.sum(0, keepdim=True)                                    # probability columns
    W = torch.linalg.lstsq(A, Mat).solution                           # (heads, D)
    residual = float((A @ W - Mat).abs().max())
    distributions = torch.zeros(A.shape[1], len(offsets), dtype=torch.float64)
    distributions[:, active] = A.T
    return MinimalPlan(offsets, rank, cert, distributions, W.reshape(-1, d_in, d_out),
                       residual)
