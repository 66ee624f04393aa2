"""Per-kernel minimal heads (docs/theory.md §3.4): a content-free MHSA with ``rho`` or ``rho + 1``
heads that equals a given convolution.

Pipeline: ``M_delta`` (``vitconv.numeric.blocks``) -> the matrix ``Mat`` with rows
``vec(M_delta)`` -> does its column space hold a strictly positive vector (a linear
program, then an exact certificate from ``vitconv.theory.minimal_heads``)? -> a basis of
probability vectors ``A`` (``#offsets x H``) with ``Mat = A W`` exactly in rationals ->
head ``h`` attends with probabilities ``A[:, h]`` over the plan's offsets (``log`` of them in
the bias table, masked elsewhere), values/outputs ``W_V^h W_O^h = W^h``.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch
from scipy.optimize import linprog
from torch import nn

from vitconv.numeric.blocks import block_matrices
from vitconv.numeric.convertible import conv_geometry
from vitconv.numeric.rank import exact_weights
from vitconv.theory.bounds import span_rows
from vitconv.theory.exact_rank import exact_rank
from vitconv.theory.minimal_heads import (
    Decomposition,
    PositivityCertificate,
    decompose,
    farkas_from_support,
    minimum_heads,
    nonzero_rows,
    verify_positive,
)


@dataclass(frozen=True)
class MinimalPlan:
    """``heads`` probability vectors over ``offsets`` and one ``(d_in, d_out)`` matrix each,
    with ``sum_h distributions[h, delta] * matrices[h] == M_delta``: exactly in rationals
    (``decomposition``, checked by ``vitconv.theory.minimal_heads.verify_decomposition``), and up
    to the rounding of its entries to float64 in ``distributions`` and ``matrices``."""

    offsets: tuple[tuple[int, int], ...]
    active: tuple[int, ...]      # plan indices of the offsets with M_delta != 0
    rank: int
    certificate: PositivityCertificate
    decomposition: Decomposition | None  # None for a zero kernel
    distributions: torch.Tensor  # (heads, #offsets), float64, columns of A
    matrices: torch.Tensor       # (heads, d_in, d_out), float64

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


def block_rows(conv: nn.Conv2d, patch_size: int, active: list[int]) -> list[list[Fraction]]:
    """The rows ``vec(M_delta)`` of the given plan offsets, as exact rationals."""
    geom = conv_geometry(conv, patch_size)
    blocks = block_matrices(conv.weight.detach().to(torch.float64).cpu(), geom)
    offsets = geom.head_plan()
    return [[Fraction(v) for v in blocks[offsets[i]].reshape(-1).tolist()] for i in active]


_PLANS: OrderedDict[tuple, MinimalPlan] = OrderedDict()  # recent plans by kernel content
_PLANS_KEPT = 16


def minimal_plan(conv: nn.Conv2d, patch_size: int) -> MinimalPlan:
    """The ``rho`` / ``rho + 1`` head decomposition of ``conv`` on patches of ``patch_size``.

    A zero kernel needs no head; the plan then keeps one head of zero weight so that the
    module stays a valid attention layer (its output is the bias). The plan is a pure
    function of the kernel's values and geometry, so the last few are kept (keyed by
    exactly those): the construction and its rounding bound both ask for it. Callers must
    not modify the returned tensors.
    """
    weight = conv.weight.detach().to(torch.float64).cpu()
    key = (conv_geometry(conv, patch_size), tuple(weight.shape), weight.numpy().tobytes())
    if key in _PLANS:
        _PLANS.move_to_end(key)
        return _PLANS[key]
    plan = _minimal_plan(conv, patch_size)
    _PLANS[key] = plan
    if len(_PLANS) > _PLANS_KEPT:
        _PLANS.popitem(last=False)
    return plan


def _minimal_plan(conv: nn.Conv2d, patch_size: int) -> MinimalPlan:
    geom = conv_geometry(conv, patch_size)
    offsets = geom.head_plan()
    rank, active, cert = positivity_certificate(conv, patch_size)
    d_in, d_out = geom.token_dim_in, geom.token_dim_out
    if not active:
        one_hot = torch.zeros(1, len(offsets), dtype=torch.float64)
        one_hot[0, 0] = 1.0
        return MinimalPlan(offsets, (), 0, cert, None, one_hot,
                           torch.zeros(1, d_in, d_out, dtype=torch.float64))
    all_rows = span_rows(geom, exact_weights(conv))
    dec = decompose([all_rows[i] for i in active], block_rows(conv, patch_size, active), cert)
    distributions = torch.zeros(dec.heads, len(offsets), dtype=torch.float64)
    distributions[:, active] = torch.tensor([[float(v) for v in col] for col in dec.columns],
                                            dtype=torch.float64)
    matrices = torch.tensor([[float(v) for v in w] for w in dec.weights], dtype=torch.float64)
    return MinimalPlan(offsets, tuple(active), rank, cert, dec, distributions,
                       matrices.reshape(-1, d_in, d_out))
