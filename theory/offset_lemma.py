"""The offset lemma (docs/theory.md §3.1) as exact objects, a certificate proof and a brute force.

Statement. Let ``P = stride*Q`` (``Q >= 1`` output pixels per patch and axis), and let
the taps span ``[-a, b]`` with ``a, b >= 0``. The patch offsets
``floor((u*stride + t)/P)`` for ``0 <= u < Q`` and ``-a <= t <= b`` are exactly the
integers ``lo..hi`` with ``lo = floor(-a/P)`` and ``hi = floor((P - stride + b)/P)``.
With stride 1 their number is ``ceil(a/P) + ceil(b/P) + 1``: 3 per axis (9 heads in 2-D)
when ``a, b <= P``.

Three independent checks: :func:`range_proof`, :func:`surjectivity_proofs` and
:func:`count_proof` are step-by-step certificate proofs (``vitconv.theory.certificates``);
``vitconv.theory.smt`` proves the same for all integers with z3 (also for ``a + b >= 0``);
:func:`brute_force` enumerates small cases, dilated kernels included.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

import sympy as sp

from vitconv.theory.certificates import NEGATION, Fact, InequalityProof, Step
from vitconv.theory.geometry import AxisGeometry, offset_interval

# Integer symbols of the lemma. P is not a free symbol: P = stride*Q keeps stride | P.
Q, stride, a, b, u, t, m, lo, hi, c = sp.symbols("Q sigma a b u t m lo hi c", integer=True)
ca, cb = sp.symbols("c_a c_b", integer=True)
a_sym, b_sym = a, b  # the span symbols, under names that keyword arguments cannot shadow
P = stride * Q
x = u * stride + t  # the input position read, relative to the first pixel of the patch

# The statement as sympy objects. These very objects are printed into the appendix AND
# consumed by every check: the certificate proofs derive their floor/ceiling facts from
# them (:func:`definition_facts`), ``vitconv.theory.smt`` translates them for z3, and
# :func:`brute_force` evaluates them (:func:`evaluate`).
P_sym = sp.Symbol("P", integer=True, positive=True)
LOWER = sp.floor(-a / P_sym)
UPPER = sp.floor((P_sym - stride + b) / P_sym)
COUNT = UPPER - LOWER + 1
COUNT_STRIDE_ONE = sp.ceiling(a / P_sym) + sp.ceiling(b / P_sym) + 1
FORMULAS = {"lower": LOWER, "upper": UPPER, "count": COUNT, "count1": COUNT_STRIDE_ONE}


def _single_atom(expr: sp.Expr) -> tuple[sp.Expr, sp.Expr, sp.Expr]:
    """``expr = coeff * atom + rest`` with one floor/ceiling ``atom`` and ``coeff = +-1``."""
    atoms = list(expr.atoms(sp.floor, sp.ceiling))
    if len(atoms) != 1:
        raise ValueError(f"{expr} must hold exactly one floor or ceiling, found {atoms}")
    atom = atoms[0]
    terms = [term for term in sp.Add.make_args(expr) if term.has(atom)]
    coeff = sp.simplify(terms[0] / atom) if len(terms) == 1 else None
    rest = sp.expand(expr - terms[0]) if len(terms) == 1 else expr
    if coeff not in (1, -1) or rest.atoms(sp.floor, sp.ceiling):
        raise ValueError(f"{expr} must be +-floor(.) or +-ceiling(.) plus a polynomial")
    return coeff, atom, rest


def definition_facts(name: str, value: sp.Expr, expr: sp.Expr, text: str,
                     substitutions: dict | None = None) -> tuple[Fact, Fact]:
    """The two integer inequalities that define ``value == expr`` for ``expr`` with one
    floor or ceiling of a quotient ``num/den`` (``den > 0``), derived from ``expr`` itself:
    ``k*den <= num <= k*den + den - 1`` for ``k = floor(num/den)``, and
    ``(k-1)*den + 1 <= num <= k*den`` for ``k = ceiling(num/den)``.

    ``substitutions`` replace symbols first (by default ``P -> stride*Q``). Named
    ``<name>_lower`` and ``<name>_upper``.
    """
    expr = expr.subs(substitutions if substitutions is not None else {P_sym: P})
    coeff, atom, rest = _single_atom(expr)
    k = sp.expand((value - rest) * coeff)  # the value of the atom
    num, den = sp.fraction(sp.together(atom.args[0]))
    if isinstance(atom, sp.floor):
        lower, upper = num - k * den, k * den + den - 1 - num
    else:
        lower, upper = k * den - num, num - (k - 1) * den - 1
    return (Fact(f"{name}_lower", sp.expand(lower), f"{text} (lower side)"),
            Fact(f"{name}_upper", sp.expand(upper), f"{text} (upper side)"))


def evaluate(expr: sp.Expr, *, P: int, a: int, b: int, sigma: int = 1) -> int:
    """``expr`` (one of the lemma's formulas) at integers, exactly: floors and ceilings of
    exact fractions (``sympy.lambdify`` with ``Fraction`` arguments).

    Raises:
        TypeError / ValueError: a non-integer argument, ``P < 1``, ``sigma < 1``, or a
            stride that does not divide ``P`` (outside the lemma's hypotheses).
    """
    for name, value in (("P", P), ("a", a), ("b", b), ("sigma", sigma)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {value!r}")
    if P < 1 or sigma < 1 or P % sigma:
        raise ValueError(f"need P >= 1 and a stride sigma >= 1 dividing it, got P={P}, "
                         f"sigma={sigma}")
    f = _lambdified(expr, (P_sym, a_sym, b_sym, stride))
    return int(f(Fraction(P), Fraction(a), Fraction(b), Fraction(sigma)))


@lru_cache(maxsize=64)
def _lambdified(expr: sp.Expr, symbols: tuple):
    return sp.lambdify(symbols, expr, modules=[{"floor": math.floor, "ceiling": math.ceil}])


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
        *definition_facts("lo_floor", lo, LOWER, "lo = LOWER"),
        *definition_facts("hi_floor", hi, UPPER, "hi = UPPER"),
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


def _count_atoms() -> dict[str, sp.Expr]:
    """The two ceilings of :data:`COUNT_STRIDE_ONE`, named by the span they measure."""
    atoms = {}
    for atom in COUNT_STRIDE_ONE.atoms(sp.floor, sp.ceiling):
        names = [n for n, sym in (("c_a", a), ("c_b", b)) if atom.has(sym)]
        if len(names) != 1:
            raise ValueError(f"{atom} in the count formula must measure a or b alone")
        atoms[names[0]] = atom
    if sorted(atoms) != ["c_a", "c_b"]:
        raise ValueError(f"the count formula {COUNT_STRIDE_ONE} must measure a and b once each")
    return atoms


def count_proof() -> InequalityProof:
    """With stride 1: ``hi - lo + 1`` equals :data:`COUNT_STRIDE_ONE`.

    The facts come from the printed formulas (stride 1, so ``P = Q``): ``lo`` and ``hi``
    from :data:`LOWER` and :data:`UPPER`, ``c_a`` and ``c_b`` from the two ceilings of
    :data:`COUNT_STRIDE_ONE`. Certified steps give ``hi = c_b`` and ``lo = -c_a``; the last
    two steps show that :data:`COUNT_STRIDE_ONE` (its ceilings replaced by ``c_a``, ``c_b``)
    minus ``hi - lo + 1`` is both ``>= 0`` and ``<= 0``.
    """
    one = {P_sym: Q, stride: 1}
    atoms = _count_atoms()
    names = {"c_a": ca, "c_b": cb}
    count = COUNT_STRIDE_ONE.subs(one).subs({atom.subs(one): names[k]
                                             for k, atom in atoms.items()})
    difference = sp.expand(count - (hi - lo + 1))
    facts = (
        Fact("Q_ge_1", Q - 1, "P >= 1 (stride 1, so P = Q)"),
        *definition_facts("lo_floor", lo, LOWER, "lo = LOWER", one),
        *definition_facts("hi_floor", hi, UPPER, "hi = UPPER", one),
        *definition_facts("ca_ceil", ca, atoms["c_a"], "c_a = ceil(a/P)", one),
        *definition_facts("cb_ceil", cb, atoms["c_b"], "c_b = ceil(b/P)", one),
    )
    neg = (1, (NEGATION,))
    steps = (
        Step("cb_ge_hi", cb - hi,
             ((1, ("hi_floor_lower",)), (1, ("cb_ceil_lower",)), (1, ("Q_ge_1", NEGATION)),
              neg), "c_b >= hi", by_contradiction=True),
        Step("hi_ge_cb", hi - cb,
             ((1, ("hi_floor_upper",)), (1, ("cb_ceil_upper",)), (1, ("Q_ge_1", NEGATION)),
              neg), "hi >= c_b", by_contradiction=True),
        Step("ca_ge_minus_lo", ca + lo,
             ((1, ("ca_ceil_lower",)), (1, ("lo_floor_upper",)), (1, ("Q_ge_1", NEGATION)),
              neg), "c_a >= -lo", by_contradiction=True),
        Step("minus_lo_ge_ca", -lo - ca,
             ((1, ("lo_floor_lower",)), (1, ("ca_ceil_upper",)), (1, ("Q_ge_1", NEGATION)),
              neg), "-lo >= c_a", by_contradiction=True),
        Step("count_ge", difference,
             ((1, ("cb_ge_hi",)), (1, ("ca_ge_minus_lo",))),
             "count formula >= hi - lo + 1"),
        Step("count_le", -difference,
             ((1, ("hi_ge_cb",)), (1, ("minus_lo_ge_ca",))),
             "count formula <= hi - lo + 1"),
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

    The lemma's side is the printed formulas, evaluated exactly (:func:`evaluate`). For
    every case: the offsets reached are exactly ``LOWER..UPPER`` (contiguous taps), with
    stride 1 there are ``COUNT_STRIDE_ONE`` of them, and ``offset_interval`` (what the
    numeric code uses) agrees. For dilated kernels: ``AxisGeometry.offsets`` (the head
    plan) lies inside the interval, and with stride 1 and dilation ``<= P`` it is the whole
    interval, ``COUNT_STRIDE_ONE`` offsets.
    """
    cases = dilated = strict = 0
    for P_ in range(1, max_patch + 1):
        for s in (d for d in range(1, P_ + 1) if P_ % d == 0):
            for a_ in range(0, max_span + 1):
                for b_ in range(0, max_span + 1):
                    reached = {(uu * s + tt) // P_ for uu in range(P_ // s)
                               for tt in range(-a_, b_ + 1)}
                    lo_ = evaluate(LOWER, P=P_, a=a_, b=b_, sigma=s)
                    hi_ = evaluate(UPPER, P=P_, a=a_, b=b_, sigma=s)
                    cases += 1
                    if reached != set(range(lo_, hi_ + 1)):
                        return BruteForceResult(cases, dilated, strict,
                                                f"P={P_} stride={s} a={a_} b={b_}: reached "
                                                f"{sorted(reached)}, formulas {lo_}..{hi_}")
                    if offset_interval(a_, b_, P_, s) != (lo_, hi_):
                        return BruteForceResult(cases, dilated, strict,
                                                f"offset_interval differs at P={P_} "
                                                f"stride={s} a={a_} b={b_}")
                    if s == 1 and hi_ - lo_ + 1 != evaluate(COUNT_STRIDE_ONE, P=P_, a=a_, b=b_):
                        return BruteForceResult(cases, dilated, strict,
                                                f"count formula fails at P={P_} a={a_} b={b_}")
            for k in range(1, max_span + 2):
                for d in range(1, max_dilation + 1):
                    for pad in range(0, d * (k - 1) + 1):
                        geom = AxisGeometry(k, P_, d, s, pad, pad)
                        span_a, span_b = geom.span
                        interval = set(range(evaluate(LOWER, P=P_, a=span_a, b=span_b, sigma=s),
                                             evaluate(UPPER, P=P_, a=span_a, b=span_b,
                                                      sigma=s) + 1))
                        offsets = set(geom.offsets())
                        dilated += 1
                        if (d == 1 or (s == 1 and d <= P_)) and offsets != interval:
                            return BruteForceResult(cases, dilated, strict,
                                                    f"head plan is not the interval: {geom}")
                        if s == 1 and d <= P_ and len(offsets) != evaluate(
                                COUNT_STRIDE_ONE, P=P_, a=span_a, b=span_b):
                            return BruteForceResult(cases, dilated, strict,
                                                    f"head count is not the formula: {geom}")
                        if not offsets <= interval:
                            return BruteForceResult(cases, dilated, strict,
                                                    f"offset outside interval: {geom}")
                        strict += offsets != interval
    return BruteForceResult(cases, dilated, strict, None)
