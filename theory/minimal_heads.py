"""The minimum number of heads for a specific kernel: ``rho`` or ``rho + 1`` (DESIGN 3.4).

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

from theory.exact_rank import exact_rank

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
