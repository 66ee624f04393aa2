"""The minimum number of heads for a specific kernel: ``rho`` or ``rho + 1`` (docs/theory.md §3.4).

Let ``Mat`` have rows ``vec(M_delta)``, keeping only the offsets with ``M_delta != 0``
(the others need no attention), and ``rho = rank(Mat)``. With content-free scores head
``h`` contributes ``a_h(delta) W^h`` to ``M_delta``, ``a_h`` a probability vector over the
offsets (masked elsewhere), so ``H`` heads realise the convolution iff ``Mat = A W`` with
``H`` probability columns in ``A``.

* If the column space of ``Mat`` contains a strictly positive vector ``p``, it has a basis
  of positive vectors (``s_i + t p`` for large ``t``), normalised to probability vectors:
  ``rho`` heads suffice.
* Otherwise ``rho`` heads cannot work, for ANY MHSA of the standard form (positions in the
  scores only), content-dependent included: by the Jacobian lemma, equality near 0 forces
  ``Mat = A(0) W`` with ``A(0)``'s columns probability vectors; with ``rho`` heads they span
  the column space, and their sum is non-negative and nonzero on every offset with
  ``M_delta != 0``, i.e. strictly positive: a contradiction. Adding the all-ones vector
  gives ``rho + 1`` heads.

Both alternatives come with an exact certificate checked here: a vector ``z`` with
``Mat z > 0`` (positive), or, by Farkas' lemma, ``y >= 0``, ``y != 0`` with ``y^T Mat = 0``
(then ``y^T Mat z = 0`` for every ``z``, so no positive vector lies in the span). With the
lower bound ``H >= rho`` this gives the exact minimum head count of every convolution.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from vitconv.theory.exact_rank import exact_rank

Matrix = Sequence[Sequence[Fraction | int]]


@dataclass(frozen=True)
class PositivityCertificate:
    """``kind='positive'``: ``vector`` is ``z`` (one entry per column) with ``M z > 0``.
    ``kind='farkas'``: ``vector`` is ``y`` (one per row), ``y >= 0``, ``y != 0``,
    ``y^T M = 0``."""

    kind: str
    vector: tuple[Fraction, ...]


def verify_positive(rows: Matrix, z: Sequence[Fraction]) -> bool:
    """Exactly: every entry of ``M z`` is > 0."""
    return all(sum(Fraction(m) * zi for m, zi in zip(row, z, strict=True)) > 0 for row in rows)


def verify_farkas(rows: Matrix, y: Sequence[Fraction]) -> bool:
    """Exactly: ``y >= 0``, ``y != 0`` and ``y^T M = 0``."""
    if any(v < 0 for v in y) or not any(v > 0 for v in y):
        return False
    cols = len(rows[0]) if rows else 0
    return all(sum(y[r] * Fraction(rows[r][c]) for r in range(len(rows))) == 0
               for c in range(cols))


def verify(rows: Matrix, cert: PositivityCertificate) -> bool:
    """Check a certificate of either kind."""
    if cert.kind == "positive":
        return verify_positive(rows, cert.vector)
    if cert.kind == "farkas":
        return verify_farkas(rows, cert.vector)
    raise ValueError(f"unknown certificate kind {cert.kind!r}")


def farkas_from_support(rows: Matrix, support: Sequence[int]) -> PositivityCertificate | None:
    """An exact ``y`` supported on ``support`` (e.g. the support of an LP vertex).

    If the rows in ``support`` have a one-dimensional left null space spanned by a vector
    of one sign, that vector (made non-negative) is a Farkas certificate; else ``None``.
    """
    sub = [rows[r] for r in support]
    cert = exact_rank(sub)
    if cert.rank != len(support) - 1 or len(cert.combinations) != 1:
        return None
    r, coefficients = cert.combinations[0]
    local = [Fraction(0)] * len(support)
    local[r] = Fraction(1)
    for p, c in zip(cert.pivot_rows, coefficients, strict=True):
        local[p] -= c
    if all(v <= 0 for v in local):
        local = [-v for v in local]
    y = [Fraction(0)] * len(rows)
    for i, r_global in enumerate(support):
        y[r_global] = local[i]
    candidate = PositivityCertificate("farkas", tuple(y))
    return candidate if verify_farkas(rows, y) else None


def nonzero_rows(rows: Matrix) -> list[int]:
    """Indices of the rows that are not identically zero (offsets with ``M_delta != 0``)."""
    return [i for i, row in enumerate(rows) if any(v != 0 for v in row)]


def minimum_heads(rank: int, cert: PositivityCertificate) -> int:
    """``rho`` with a positive vector in the span, ``rho + 1`` with a Farkas certificate."""
    return rank if cert.kind == "positive" else rank + 1


@dataclass(frozen=True)
class Decomposition:
    """``Mat = A W`` exactly over the rationals: ``columns`` are the columns of ``A`` (one
    probability vector over the rows of ``Mat`` per head), ``weights`` the rows of ``W``
    (one ``vec(W^h)`` per head)."""

    columns: tuple[tuple[Fraction, ...], ...]
    weights: tuple[tuple[Fraction, ...], ...]

    @property
    def heads(self) -> int:
        return len(self.columns)


def _qq(rows: Matrix):
    """Rows of rationals as a sympy ``DomainMatrix`` over QQ."""
    from sympy import QQ
    from sympy.polys.matrices import DomainMatrix

    data = [[QQ(Fraction(v).numerator, Fraction(v).denominator) for v in row] for row in rows]
    return DomainMatrix(data, (len(rows), len(rows[0])), QQ)


def _solve(A_rows: list[list[Fraction]], B_rows: Matrix) -> list[list[Fraction]]:
    """The exact ``W`` with ``A W = B`` for ``A`` of full column rank (rows of ``A``, ``B``):
    solved on a set of independent rows of ``A`` (the pivots of ``A^T``'s echelon form)."""
    _, pivots = _qq(A_rows).transpose().rref()
    pick = list(pivots)
    W = _qq([A_rows[i] for i in pick]).inv().matmul(_qq([B_rows[i] for i in pick]))
    return [[Fraction(int(v.numerator), int(v.denominator)) for v in row]
            for row in W.to_list()]


def decompose(span: Matrix, full: Matrix, cert: PositivityCertificate) -> Decomposition:
    """Exact probability heads for a kernel (docs/theory.md §3.4).

    Args:
        span: the rows ``vec(M_delta)`` of the offsets with ``M_delta != 0`` with equal
            columns merged (``vitconv.theory.bounds.span_rows``): the same column space as ``full``.
        full: the same rows with every entry of ``vec(M_delta)``.
        cert: the positivity certificate of ``span`` (:func:`verify` must accept it).
    Returns:
        ``rho`` heads (positive certificate) or ``rho + 1`` (Farkas): ``A``'s columns are
        ``b_i + t p`` (``b_i`` independent columns of ``span``, ``p`` a positive vector in
        the column space, or the all-ones vector joining them) scaled to sum 1, and ``W``
        solves ``A W = full`` exactly.
    """
    rank = exact_rank(span)
    basis = [[Fraction(row[c]) for row in span] for c in rank.pivot_cols]   # rho columns
    m = len(span)
    if cert.kind == "positive":
        p = [sum((Fraction(v) * z for v, z in zip(row, cert.vector, strict=True)),
                 Fraction(0)) for row in span]
    else:
        p = [Fraction(1)] * m
    # t large enough that every b_i + t p is positive
    t = 1 + max([Fraction(0), *(-b[j] / p[j] for b in basis for j in range(m))])
    while True:
        columns = [[b[j] + t * p[j] for j in range(m)] for b in basis]
        if cert.kind == "farkas":
            columns.append(list(p))
        A_rows = [[col[j] for col in columns] for j in range(m)]
        if _qq(A_rows).rank() == len(columns):
            break
        t += 1  # 1 + t * sum(c) == 0 for this t only: the next one keeps them independent
    columns = [[v / sum(col) for v in col] for col in columns]
    A_rows = [[col[j] for col in columns] for j in range(m)]
    weights = _solve(A_rows, full)
    return Decomposition(tuple(tuple(c) for c in columns), tuple(tuple(w) for w in weights))


def verify_decomposition(full: Matrix, dec: Decomposition) -> bool:
    """Exactly: every column of ``A`` is a probability vector and ``A W == full``."""
    if any(v < 0 for col in dec.columns for v in col) or \
            any(sum(col) != 1 for col in dec.columns):
        return False
    for j, row in enumerate(full):
        for d, target in enumerate(row):
            value = sum((col[j] * w[d] for col, w in zip(dec.columns, dec.weights, strict=True)),
                        Fraction(0))
            if value != Fraction(target):
                return False
    return True
