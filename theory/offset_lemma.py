"""The offset lemma (DESIGN 3.1) as exact objects, a certificate proof and a brute force.

Statement. Let ``P = stride*Q`` (``Q >= 1`` output pixels per patch and axis), and let
the taps span ``[-a, b]`` with ``a, b >= 0``. The patch offsets
``floor((u*stride + t)/P)`` for ``0 <= u < Q`` and ``-a <= t <= b`` are exactly the
integers ``lo..hi`` with ``lo = floor(-a/P)`` and ``hi = floor((P - stride + b)/P)``.
With stride 1 their number is ``ceil(a/P) + ceil(b/P) + 1``: 3 per axis (9 heads in 2-D)
when ``a, b <= P``.

Three independent checks: :func:`range_proof`, :func:`surjectivity_proofs` and
:func:`count_proof` are step-by-step certificate proofs (``theory.certificates``);
``theory.smt`` proves the same for all integers with z3 (also for ``a + b >= 0``);
:func:`brute_force` enumerates small cases, dilated kernels included.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from theory.certificates import NEGATION, Fact, InequalityProof, Step
from theory.geometry import AxisGeometry, offset_interval

# Integer symbols of the lemma. P is not a free symbol: P = stride*Q keeps stride | P.
Q, stride, a, b, u, t, m, lo, hi, c = sp.symbols("Q sigma a b u t m lo hi c", integer=True)
P = stride * Q
x = u * stride + t  # the input position read, relative to the first pixel of the patch

# The statement as sympy objects (rendered into the appendix by report/).
P_sym = sp.Symbol("P", integer=True, positive=True)
LOWER = sp.floor(-a / P_sym)
UPPER = sp.floor((P_sym - stride + b) / P_sym)
COUNT = UPPER - LOWER + 1
COUNT_STRIDE_ONE = sp.ceiling(a / P_sym) + sp.ceiling(b / P_sym) + 1

_P_POSITIVE = Step(
    "P_ge_1", P - 1,
    ((1, ("stride_ge_1", "Q_ge_1")), (1, ("stride_ge_1",)), (1, ("Q_ge_1",))),
    "P = stride*Q >= 1, since (stride-1)(Q-1) + (stride-1) + (Q-1) >= 0",
)


def _base_facts() -> list[Fact]:
    return [
        Fact("Q_ge_1", Q - 1, "Q >= 1"),
        Fact("stride_ge_1", stride - 1, "stride >= 1"),
        Fact("a_ge_0", a, "a >= 0"),
        Fact("b_ge_0", b, "b >= 0"),
        Fact("lo_floor_lower", -a - lo * P, "lo*P <= -a  (lo = floor(-a/P))"),
        Fact("lo_floor_upper", lo * P + P - 1 + a, "-a <= lo*P + P - 1"),
        Fact("hi_floor_lower", P - stride + b - hi * P,
             "hi*P <= P - stride + b  (hi = floor((P - stride + b)/P))"),
        Fact("hi_floor_upper", hi * P + P - 1 - (P - stride + b),
             "P - stride + b <= hi*P + P - 1"),
    ]


def range_proof() -> InequalityProof:
    """Every tap lands in a patch offset between ``lo`` and ``hi``."""
    facts = [
        *_base_facts(),
        Fact("u_ge_0", u, "u >= 0"),
        Fact("u_le", Q - 1 - u, "u <= Q - 1"),
        Fact("t_ge", t + a, "t >= -a"),
        Fact("t_le", b - t, "t <= b"),
        Fact("m_floor_lower", x - m * P, "m*P <= u*stride + t  (m = floor(x/P))"),
        Fact("m_floor_upper", m * P + P - 1 - x, "u*stride + t <= m*P + P - 1"),
    ]
    steps = [
        _P_POSITIVE,
        Step("x_ge", x + a,
             ((1, ("u_ge_0", "stride_ge_1")), (1, ("u_ge_0",)), (1, ("t_ge",))),
             "x = u*stride + t >= -a"),
        Step("x_le", P - stride + b - x,
             ((1, ("stride_ge_1", "u_le")), (1, ("u_le",)), (1, ("t_le",))),
             "x <= (Q-1)*stride + b = P - stride + b"),
        Step("m_ge_lo", m - lo,
             ((1, ("m_floor_upper",)), (1, ("x_ge",)), (1, ("lo_floor_lower",)),
              (1, ("P_ge_1", NEGATION)), (1, (NEGATION,))),
             "m >= lo: otherwise P*(m - lo + 1) <= 0 < P*(m - lo + 1) - (m*P + P - 1 - x) ...",
             by_contradiction=True),
        Step("m_le_hi", hi - m,
             ((1, ("m_floor_lower",)), (1, ("x_le",)), (1, ("hi_floor_upper",)),
              (1, ("P_ge_1", NEGATION)), (1, (NEGATION,))),
             "m <= hi, symmetrically",
             by_contradiction=True),
    ]
    return InequalityProof("offset range", tuple(facts), tuple(steps))


@dataclass(frozen=True)
class Witness:
    """One case of the surjectivity proof: when it applies, and the (u, t) it picks."""

    name: str
    conditions: tuple[Fact, ...]
    u: sp.Expr
    t: sp.Expr
    certificates: tuple[tuple[tuple, ...], ...]  # one per witness condition, in order


def _witness_steps(w: Witness) -> tuple[Step, ...]:
    xw = w.u * stride + w.t
    claims = (
        ("u_ge_0", w.u, "u >= 0"),
        ("u_le", Q - 1 - w.u, "u <= Q - 1"),
        ("t_ge", w.t + a, "t >= -a"),
        ("t_le", b - w.t, "t <= b"),
        ("floor_lower", xw - m * P, "m*P <= u*stride + t"),
        ("floor_upper", m * P + P - 1 - xw, "u*stride + t <= m*P + P - 1"),
    )
    steps = (Step(name, claim, cert, text)
             for (name, claim, text), cert in zip(claims, w.certificates, strict=True))
    return (_P_POSITIVE, *steps)


def _witnesses() -> tuple[Witness, ...]:
    P1 = "P_ge_1"
    return (
        Witness(
            "m <= -1 and m*P >= -a", (Fact("case_m_neg", -m - 1, "m <= -1"),
                                      Fact("case", m * P + a, "m*P >= -a")),
            sp.Integer(0), m * P,
            ((), ((1, ("Q_ge_1",)),), ((1, ("case",)),),
             ((1, ("b_ge_0",)), (1, (P1, "case_m_neg")), (1, ("case_m_neg",)), (1, (P1,))),
             (), ((1, (P1,)),)),
        ),
        Witness(
            "m <= -1 and m*P < -a", (Fact("case_m_neg", -m - 1, "m <= -1"),
                                     Fact("case", -a - m * P - 1, "m*P <= -a - 1")),
            sp.Integer(0), -a,
            ((), ((1, ("Q_ge_1",)),), (), ((1, ("a_ge_0",)), (1, ("b_ge_0",))),
             ((1, ("case",)),),
             ((1, ("m_ge_lo", P1)), (1, ("m_ge_lo",)), (1, ("lo_floor_upper",)))),
        ),
        Witness(
            "m = 0", (Fact("case_m_ge", m, "m >= 0"), Fact("case_m_le", -m, "m <= 0")),
            sp.Integer(0), sp.Integer(0),
            ((), ((1, ("Q_ge_1",)),), ((1, ("a_ge_0",)),), ((1, ("b_ge_0",)),),
             ((1, ("case_m_le", P1)), (1, ("case_m_le",))),
             ((1, ("case_m_ge", P1)), (1, ("case_m_ge",)), (1, (P1,)))),
        ),
        Witness(
            "m >= 1 and b <= m*P + stride - 1",
            (Fact("case_m_pos", m - 1, "m >= 1"),
             Fact("case", m * P + stride - 1 - b, "b <= m*P + stride - 1")),
            Q - 1, b,
            (((1, ("Q_ge_1",)),), (), ((1, ("a_ge_0",)), (1, ("b_ge_0",))), (),
             ((1, ("m_le_hi", P1)), (1, ("m_le_hi",)), (1, ("hi_floor_lower",))),
             ((1, ("case",)),)),
        ),
        Witness(
            "m >= 1 and b >= m*P + stride",
            (Fact("case_m_pos", m - 1, "m >= 1"),
             Fact("case", b - m * P - stride, "b >= m*P + stride")),
            Q - 1, m * P + stride - 1,
            (((1, ("Q_ge_1",)),), (),
             ((1, ("case_m_pos", P1)), (1, ("case_m_pos",)), (1, (P1,)), (1, ("stride_ge_1",)),
              (1, ("a_ge_0",))),
             ((1, ("case",)),), ((1, (P1,)),), ()),
        ),
    )


def surjectivity_proofs() -> tuple[InequalityProof, ...]:
    """Every offset ``lo <= m <= hi`` is reached: an explicit ``(u, t)`` per case.

    The five cases (``m <= -1`` split by the sign of ``m*P + a``, ``m = 0``, ``m >= 1``
    split by ``b`` against ``m*P + stride``) cover all integers ``m``.
    """
    proofs = []
    for w in _witnesses():
        facts = (
            *_base_facts(),
            Fact("m_ge_lo", m - lo, "m >= lo"),
            Fact("m_le_hi", hi - m, "m <= hi"),
            *w.conditions,
        )
        proofs.append(InequalityProof(f"offset surjectivity, case {w.name}: u = {w.u}, "
                                      f"t = {w.t}", facts, _witness_steps(w)))
    return tuple(proofs)


def count_proof() -> InequalityProof:
    """With stride 1, ``hi = floor((P - 1 + b)/P)`` equals ``ceil(b/P)``.

    Together with ``-lo = -floor(-a/P) = ceil(a/P)`` (the definition of ceiling) this gives
    the count ``hi - lo + 1 = ceil(a/P) + ceil(b/P) + 1``.
    """
    one = {stride: 1}
    facts = (
        Fact("Q_ge_1", Q - 1, "P >= 1 (stride 1, so P = Q)"),
        Fact("hi_floor_lower", (P - stride + b - hi * P).subs(one), "hi*P <= P - 1 + b"),
        Fact("hi_floor_upper", (hi * P + P - 1 - (P - stride + b)).subs(one),
             "P - 1 + b <= hi*P + P - 1"),
        Fact("c_ceil_lower", c * Q - b, "c*P >= b  (c = ceil(b/P))"),
        Fact("c_ceil_upper", b - (c - 1) * Q - 1, "(c - 1)*P < b"),
    )
    steps = (
        Step("c_ge_hi", c - hi,
             ((1, ("hi_floor_lower",)), (1, ("c_ceil_lower",)), (1, ("Q_ge_1", NEGATION)),
              (1, (NEGATION,))),
             "c >= hi", by_contradiction=True),
        Step("hi_ge_c", hi - c,
             ((1, ("hi_floor_upper",)), (1, ("c_ceil_upper",)), (1, ("Q_ge_1", NEGATION)),
              (1, (NEGATION,))),
             "hi >= c", by_contradiction=True),
    )
    return InequalityProof("offset count (stride 1)", facts, steps)


def all_proofs() -> tuple[InequalityProof, ...]:
    """The whole certificate proof of the lemma: range, surjectivity cases, count."""
    return (range_proof(), *surjectivity_proofs(), count_proof())


@dataclass(frozen=True)
class BruteForceResult:
    """Outcome of :func:`brute_force`: how many cases, and the first mismatch if any."""

    cases: int
    dilated_cases: int
    dilated_strict: int  # dilated kernels whose offsets are a strict subset of the interval
    mismatch: str | None


def brute_force(max_patch: int = 6, max_span: int = 13, max_dilation: int = 4) -> BruteForceResult:
    """Enumerate all small ``P, stride | P, a, b, u, t`` and compare with the lemma.

    Checks, for every case: the offsets reached equal ``offset_interval`` exactly
    (contiguous taps), the stride-1 count formula, and that ``AxisGeometry.offsets`` (the
    head plan used by the numeric code) agrees; for dilated kernels, that the offsets lie
    inside the interval (they may skip patches when ``dilation > P``).
    """
    cases = dilated = strict = 0
    for P_ in range(1, max_patch + 1):
        for s in (d for d in range(1, P_ + 1) if P_ % d == 0):
            for a_ in range(0, max_span + 1):
                for b_ in range(0, max_span + 1):
                    reached = {(uu * s + tt) // P_ for uu in range(P_ // s)
                               for tt in range(-a_, b_ + 1)}
                    lo_, hi_ = offset_interval(a_, b_, P_, s)
                    cases += 1
                    if reached != set(range(lo_, hi_ + 1)):
                        return BruteForceResult(cases, dilated, strict,
                                                f"P={P_} stride={s} a={a_} b={b_}: {reached}")
                    if s == 1 and hi_ - lo_ + 1 != -(-a_ // P_) + -(-b_ // P_) + 1:
                        return BruteForceResult(cases, dilated, strict,
                                                f"count formula fails at P={P_} a={a_} b={b_}")
            for k in range(1, max_span + 2):
                for d in range(1, max_dilation + 1):
                    for pad in range(0, d * (k - 1) + 1):
                        geom = AxisGeometry(k, P_, d, s, pad, pad)
                        lo_, hi_ = geom.interval()
                        offsets = set(geom.offsets())
                        dilated += 1
                        if d == 1 and offsets != set(range(lo_, hi_ + 1)):
                            return BruteForceResult(cases, dilated, strict,
                                                    f"head plan differs: {geom}")
                        if not offsets <= set(range(lo_, hi_ + 1)):
                            return BruteForceResult(cases, dilated, strict,
                                                    f"offset outside interval: {geom}")
                        strict += offsets != set(range(lo_, hi_ + 1))
    return BruteForceResult(cases, dilated, strict, None)
