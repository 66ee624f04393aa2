"""The offset lemma for ALL integers, proved with the z3 SMT solver (DESIGN 3.1).

Each claim is proved by asserting its negation together with the hypotheses and letting
z3 answer ``unsat``: no integers ``P = stride*Q >= 1``, spans ``[-a, b]`` with
``a + b >= 0`` (so also the DESIGN's ``a, b >= 0``), positions ``u`` and taps ``t``
violate it. Floors are encoded by their defining inequalities
(``q = floor(x/P)  <=>  q*P <= x < q*P + P``), so no solver-specific division enters.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import z3


@dataclass(frozen=True)
class SmtResult:
    """One z3 proof: the claim, z3's answer to its negation, and the solver time."""

    claim: str
    answer: str  # 'unsat' proves the claim; 'sat' comes with a counterexample
    seconds: float
    counterexample: str | None = None

    @property
    def proved(self) -> bool:
        return self.answer == "unsat"


def _floor_is(q: z3.ArithRef, num: z3.ArithRef, den: z3.ArithRef) -> z3.BoolRef:
    return z3.And(q * den <= num, num < q * den + den)


def _refute(claim: str, assertions: list, timeout_ms: int) -> SmtResult:
    solver = z3.Solver()
    solver.set("timeout", timeout_ms)
    solver.add(*assertions)
    start = time.perf_counter()
    answer = solver.check()
    seconds = time.perf_counter() - start
    model = str(solver.model()) if answer == z3.sat else None
    return SmtResult(claim, str(answer), seconds, model)


def prove_offset_lemma(timeout_ms: int = 20_000) -> tuple[SmtResult, ...]:
    """Prove range, surjectivity and the stride-1 count of the offset lemma for all integers.

    Returns one :class:`SmtResult` per claim; each is proved iff z3 answered ``unsat``.
    """
    Q, s, a, b, u, t, m, lo, hi, ca, cb = z3.Ints("Q stride a b u t m lo hi ca cb")
    P = s * Q
    hyps = [Q >= 1, s >= 1, a + b >= 0,
            _floor_is(lo, -a, P), _floor_is(hi, P - s + b, P)]
    in_span = z3.And(0 <= u, u <= Q - 1, -a <= t, t <= b)

    range_claim = _refute(
        "every offset floor((u*stride + t)/P) lies in [lo, hi]",
        [*hyps, in_span, _floor_is(m, u * s + t, P), z3.Or(m < lo, m > hi)],
        timeout_ms,
    )
    surjective = _refute(
        "every m in [lo, hi] is floor((u*stride + t)/P) for some u, t",
        [*hyps, lo <= m, m <= hi,
         z3.ForAll([u, t], z3.Not(z3.And(in_span, _floor_is(m, u * s + t, P))))],
        timeout_ms,
    )
    # Stride 1: hi - lo + 1 == ceil(a/P) + ceil(b/P) + 1, with ceil(n/P) = floor((n+P-1)/P).
    Pq = Q
    count = _refute(
        "with stride 1 and a, b >= 0: hi - lo + 1 = ceil(a/P) + ceil(b/P) + 1",
        [Pq >= 1, a >= 0, b >= 0,
         _floor_is(lo, -a, Pq), _floor_is(hi, Pq - 1 + b, Pq),
         _floor_is(ca, a + Pq - 1, Pq), _floor_is(cb, b + Pq - 1, Pq),
         hi - lo + 1 != ca + cb + 1],
        timeout_ms,
    )
    nine = _refute(
        "with stride 1 and 1 <= a, b <= P: the offsets are exactly -1, 0, 1 (9 heads in 2-D)",
        [Pq >= 1, a >= 1, b >= 1, a <= Pq, b <= Pq,
         _floor_is(lo, -a, Pq), _floor_is(hi, Pq - 1 + b, Pq),
         z3.Or(lo != -1, hi != 1)],
        timeout_ms,
    )
    return range_claim, surjective, count, nine
