"""Exact rank over the rationals, with a certificate a reader can recheck.

:func:`exact_rank` runs fraction-free (Bareiss) elimination on integers. Its
:class:`RankCertificate` proves the rank both ways and :func:`verify_certificate` rechecks
it with sympy, sharing no code with the elimination:

* rank >= r: the ``r x r`` submatrix at ``pivot_rows x pivot_cols`` has a nonzero
  determinant (``minor_det``);
* rank <= r: every other row equals the given rational combination of the pivot rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from math import lcm

from sympy import QQ
from sympy.polys.matrices import DomainMatrix

Number = int | Fraction


@dataclass(frozen=True)
class RankCertificate:
    """Proof that a matrix has rank exactly ``rank``."""

    rank: int
    pivot_rows: tuple[int, ...]
    pivot_cols: tuple[int, ...]
    minor_det: Fraction
    combinations: tuple[tuple[int, tuple[Fraction, ...]], ...]  # (row, coefficients)


def _integer_rows(rows: Sequence[Sequence[Number]]) -> list[list[int]]:
    """Scale each row by the lcm of its denominators (the rank does not change)."""
    out = []
    for row in rows:
        scale = lcm(*(Fraction(v).denominator for v in row)) if row else 1
        out.append([int(Fraction(v) * scale) for v in row])
    return out


def _qq_matrix(rows: Sequence[Sequence[Number]]) -> DomainMatrix:
    """A sympy DomainMatrix over QQ (exact rationals, fast arithmetic)."""
    data = [[QQ(Fraction(v).numerator, Fraction(v).denominator) for v in row] for row in rows]
    return DomainMatrix(data, (len(rows), len(rows[0]) if rows else 0), QQ)


def _determinant(minor: list[list[Fraction]]) -> Fraction:
    det = _qq_matrix(minor).det()
    return Fraction(int(det.numerator), int(det.denominator))


def exact_rank(rows: Sequence[Sequence[Number]]) -> RankCertificate:
    """Rank of a rational matrix given as rows, with its certificate."""
    M = _integer_rows(rows)
    m = len(M)
    n = len(M[0]) if m else 0
    order = list(range(m))
    pivot_cols: list[int] = []
    prev, k = 1, 0
    for col in range(n):
        if k == m:
            break
        pivot = next((r for r in range(k, m) if M[r][col] != 0), None)
        if pivot is None:
            continue
        M[k], M[pivot] = M[pivot], M[k]
        order[k], order[pivot] = order[pivot], order[k]
        for i in range(k + 1, m):
            M[i] = [(M[k][col] * M[i][j] - M[i][col] * M[k][j]) // prev for j in range(n)]
        prev = M[k][col]
        pivot_cols.append(col)
        k += 1
    pivot_rows = tuple(order[:k])
    # The certificate speaks of the matrix as given (rows were scaled for elimination).
    original = [[Fraction(v) for v in row] for row in rows]
    minor = [[original[r][c] for c in pivot_cols] for r in pivot_rows]
    others = [r for r in range(m) if r not in pivot_rows]
    combinations: tuple = ()
    if k and others:
        # x_r minor = (row r on the pivot columns)  =>  X = B minor^{-1}, all rows at once
        B = _qq_matrix([[original[r][c] for c in pivot_cols] for r in others])
        X = B.matmul(_qq_matrix(minor).inv()).to_list()
        combinations = tuple(
            (r, tuple(Fraction(int(v.numerator), int(v.denominator)) for v in X[i]))
            for i, r in enumerate(others))
    elif others:  # rank 0: every row is zero, the empty combination
        combinations = tuple((r, ()) for r in others)
    det = _determinant(minor) if k else Fraction(1)
    return RankCertificate(k, pivot_rows, tuple(pivot_cols), det, combinations)


def verify_certificate(rows: Sequence[Sequence[Number]], cert: RankCertificate) -> bool:
    """Recheck a certificate with sympy's exact matrices: nonzero minor, and every other
    row equal to its stated combination of the pivot rows."""
    if not rows:
        return cert.rank == 0
    if not (len(cert.pivot_rows) == len(cert.pivot_cols) == cert.rank):
        return False  # the claimed rank must be the size of the nonzero minor
    A = _qq_matrix(rows)
    if cert.rank == 0:
        return all(v == 0 for row in A.to_list() for v in row)
    minor = A.extract(list(cert.pivot_rows), list(cert.pivot_cols))
    if minor.det() == 0:
        return False
    pivots = A.extract(list(cert.pivot_rows), list(range(A.shape[1])))
    others = [r for r, _ in cert.combinations]
    if sorted([*cert.pivot_rows, *others]) != list(range(A.shape[0])):
        return False
    if not others:
        return True
    combos = _qq_matrix([list(c) for _, c in cert.combinations])
    return combos.matmul(pivots) == A.extract(others, list(range(A.shape[1])))
