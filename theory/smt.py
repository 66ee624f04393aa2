"""The offset lemma for ALL integers, proved with the z3 SMT solver (docs/theory.md §3.1).

Each claim is proved by asserting its negation together with the hypotheses and letting
z3 answer ``unsat``: no integers ``P = stride*Q >= 1``, spans ``[-a, b]`` with
``a + b >= 0`` (so also the lemma's ``a, b >= 0``), positions ``u`` and taps ``t``
violate it. Floors are encoded by their defining inequalities
(``q = floor(x/P)  <=>  q*P <= x < q*P + P``), so no solver-specific division enters.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import sympy as sp
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


def _check(assertions: list, timeout_ms: int) -> tuple[z3.CheckSatResult, z3.Solver]:
    solver = z3.Solver()
    solver.set("timeout", timeout_ms)
    solver.add(*assertions)
    return solver.check(), solver


def _refute(claim: str, assertions: list, timeout_ms: int,
            implied: tuple[z3.BoolRef, ...] = (), domain: tuple[z3.BoolRef, ...] = ()
            ) -> SmtResult:
    """Prove ``claim``: the last assertion is its negation, the others its hypotheses.

    Proved (answer ``unsat``) only if (1) the hypotheses alone are satisfiable, so that the
    proof is not vacuous (else answer ``vacuous``); (2) every condition in ``implied`` (the
    positivity of each translated floor's denominator) follows from ``domain``, the
    parameters' stated range without the floors' own definitions, which would otherwise
    silently exclude every parameter where a denominator is not positive (else
    ``unproved side condition``); and (3) hypotheses plus negation are unsatisfiable.
    """
    *hypotheses, _negation = assertions
    start = time.perf_counter()
    answer, solver = _check(hypotheses, timeout_ms)
    if answer != z3.sat:
        return SmtResult(claim, "vacuous" if answer == z3.unsat else f"hypotheses {answer}",
                         time.perf_counter() - start,
                         "the hypotheses admit no integers at all")
    for condition in implied:
        answer, solver = _check([*domain, z3.Not(condition)], timeout_ms)
        if answer != z3.unsat:
            return SmtResult(claim, "unproved side condition", time.perf_counter() - start,
                             f"{condition} does not follow from the hypotheses")
    answer, solver = _check(assertions, timeout_ms)
    model = str(solver.model()) if answer == z3.sat else None
    return SmtResult(claim, str(answer), time.perf_counter() - start, model)


class Translation:
    """sympy integer expressions -> z3 terms, floors and ceilings by their defining
    inequalities (each gets a fresh integer; its constraints land in ``constraints``)."""

    def __init__(self, symbols: dict[sp.Symbol, z3.ArithRef]) -> None:
        self.symbols = dict(symbols)
        self.constraints: list[z3.BoolRef] = []   # the floors' and ceilings' definitions
        self.positive: list[z3.BoolRef] = []      # their denominators >= 1: to be PROVED

    def __call__(self, expr: sp.Expr) -> z3.ArithRef:
        if expr.is_Integer:
            return z3.IntVal(int(expr))
        if expr.is_Symbol:
            if expr not in self.symbols:
                raise ValueError(f"no z3 variable for the symbol {expr}")
            return self.symbols[expr]
        if expr.is_Add:
            return z3.Sum([self(arg) for arg in expr.args])
        if expr.is_Mul:
            return z3.Product([self(arg) for arg in expr.args])
        if expr.is_Pow and expr.exp.is_Integer and expr.exp > 0:
            return z3.Product([self(expr.base)] * int(expr.exp))
        if isinstance(expr, sp.floor | sp.ceiling):
            num, den = sp.fraction(sp.together(expr.args[0]))
            n, d = self(num), self(den)
            q = z3.FreshInt(type(expr).__name__)  # a new variable, never shared
            self.positive.append(d >= 1)  # a side condition the caller must prove
            if isinstance(expr, sp.floor):
                self.constraints.append(_floor_is(q, n, d))
            else:
                self.constraints.append(z3.And((q - 1) * d < n, n <= q * d))
            return q
        raise ValueError(f"cannot translate {expr} ({type(expr).__name__}) for z3")


def prove_offset_lemma(timeout_ms: int = 20_000) -> tuple[SmtResult, ...]:
    """Prove range, surjectivity, the stride-1 count and the dilation claim of the offset
    lemma for all integers, on the printed formulas of ``vitconv.theory.offset_lemma``.

    ``LOWER``, ``UPPER`` and ``COUNT_STRIDE_ONE`` are translated as they are (no
    expression is retyped here), so a wrong printed formula fails its proof. Returns one
    :class:`SmtResult` per claim; each is proved iff z3 answered ``unsat``.
    """
    from vitconv.theory import offset_lemma as lemma

    Q, s, a, b, u, t, m = z3.Ints("Q stride a b u t m")
    P = s * Q

    implied: list[z3.BoolRef] = []  # every translated denominator must be proved >= 1

    def translate(expr: sp.Expr, **fixed: z3.ArithRef) -> tuple[z3.ArithRef, list]:
        names = {lemma.P_sym: fixed.get("P", P), lemma.stride: fixed.get("stride", s),
                 lemma.a: a, lemma.b: b}
        tr = Translation(names)
        term = tr(expr)
        implied.extend(tr.positive)
        return term, tr.constraints

    lo, lo_def = translate(lemma.LOWER)
    hi, hi_def = translate(lemma.UPPER)
    domain = (Q >= 1, s >= 1, a + b >= 0)
    hyps = [*domain, *lo_def, *hi_def]
    general = tuple(implied)
    in_span = z3.And(0 <= u, u <= Q - 1, -a <= t, t <= b)

    range_claim = _refute(
        "every offset floor((u*stride + t)/P) lies in [LOWER, UPPER]",
        [*hyps, in_span, _floor_is(m, u * s + t, P), z3.Or(m < lo, m > hi)],
        timeout_ms, general, domain,
    )
    surjective = _refute(
        "every m in [LOWER, UPPER] is floor((u*stride + t)/P) for some u, t",
        [*hyps, lo <= m, m <= hi,
         z3.ForAll([u, t], z3.Not(z3.And(in_span, _floor_is(m, u * s + t, P))))],
        timeout_ms, general, domain,
    )
    # Stride 1 (P = Q): UPPER - LOWER + 1 == COUNT_STRIDE_ONE.
    one = z3.IntVal(1)
    lo1, lo1_def = translate(lemma.LOWER, P=Q, stride=one)
    hi1, hi1_def = translate(lemma.UPPER, P=Q, stride=one)
    count1, count1_def = translate(lemma.COUNT_STRIDE_ONE, P=Q, stride=one)
    domain_one = (Q >= 1, a >= 0, b >= 0)
    stride_one = [*domain_one, *lo1_def, *hi1_def, *count1_def]
    ones = tuple(implied[len(general):])
    count = _refute(
        "with stride 1 and a, b >= 0: UPPER - LOWER + 1 = COUNT_STRIDE_ONE",
        [*stride_one, hi1 - lo1 + 1 != count1],
        timeout_ms, ones, domain_one,
    )
    nine = _refute(
        "with stride 1 and 1 <= a, b <= P: LOWER = -1 and UPPER = 1 (9 heads in 2-D)",
        [*stride_one, a >= 1, b >= 1, a <= Q, b <= Q, z3.Or(lo1 != -1, hi1 != 1)],
        timeout_ms, ones, domain_one,
    )
    # Dilation d <= P, stride 1: taps t = k*d - a (k = 0..K-1, b = (K-1)*d - a) reach every
    # offset of [LOWER, UPPER], so the head count is COUNT_STRIDE_ONE. The witness for m:
    # the pixel x = max(m*P, -a), tap k = min(floor((x + a)/d), K - 1), position u = x + a - k*d.
    d, K, kf = z3.Ints("d K kf")
    x_w = z3.If(m * Q >= -a, m * Q, -a)
    k_w = z3.If(kf > K - 1, K - 1, kf)
    u_w = x_w + a - k_w * d
    dilated = _refute(
        "with stride 1 and dilation d <= P: every m in [LOWER, UPPER] is reached by a tap",
        [*stride_one, K >= 1, d >= 1, d <= Q, b == (K - 1) * d - a, lo1 <= m, m <= hi1,
         _floor_is(kf, x_w + a, d),
         z3.Not(z3.And(0 <= u_w, u_w <= Q - 1, 0 <= k_w, k_w <= K - 1,
                       _floor_is(m, u_w + k_w * d - a, Q)))],
        timeout_ms, ones, domain_one,
    )
    return range_claim, surjective, count, nine, dilated


def prove_index_arithmetic(timeout_ms: int = 20_000) -> tuple[SmtResult, ...]:
    """The construction's index arithmetic for all integers (docs/theory.md §3.2).

    Along one axis, with ``P = stride*Q``, output pixel ``i = A*Q + u`` (``0 <= u < Q``,
    any output patch ``A``) reads, through tap ``k`` (``t = k*d - pad``, ``0 <= k < K``,
    dilation ``d >= 1``, ``pad >= 0``), input pixel ``i*stride + t``. Head
    ``delta = floor((u*stride + t)/P)`` reads pixel ``u' = u*stride + t - delta*P`` of patch
    ``A + delta``. Proved: ``0 <= u' < P``; ``(A + delta)*P + u' = i*stride + t`` (the pixel
    the head reads is the pixel the convolution reads); no other ``(delta', u')`` with
    ``0 <= u' < P`` names that pixel (each tap lands in exactly one block); and ``delta`` lies
    in the printed interval ``[LOWER, UPPER]`` for the span ``a = pad``,
    ``b = (K-1)*d - pad`` (so a head of the plan attends to it).
    """
    from vitconv.theory import offset_lemma as lemma

    Q, s, A, u, k, d, K, pad, delta, d2, v2 = z3.Ints("Q stride A u k d K pad delta d2 v2")
    P = s * Q
    t = k * d - pad
    i = A * Q + u
    u_in = u * s + t - delta * P
    domain = [Q >= 1, s >= 1, 0 <= u, u <= Q - 1, K >= 1, 0 <= k, k <= K - 1, d >= 1,
              pad >= 0]
    hyps = [*domain, _floor_is(delta, u * s + t, P)]
    tr = Translation({lemma.P_sym: P, lemma.stride: s, lemma.a: pad, lemma.b: (K - 1) * d - pad})
    lo, hi = tr(lemma.LOWER), tr(lemma.UPPER)
    return (
        _refute("the in-patch position u' of the pixel a head reads lies in [0, P)",
                [*hyps, z3.Or(u_in < 0, u_in > P - 1)], timeout_ms),
        _refute("(A + delta)*P + u' = i*stride + t: the head reads the pixel the conv reads",
                [*hyps, (A + delta) * P + u_in != i * s + t], timeout_ms),
        _refute("no other (delta', u') with 0 <= u' < P names that pixel",
                [*hyps, 0 <= v2, v2 <= P - 1, (A + d2) * P + v2 == i * s + t,
                 z3.Or(d2 != delta, v2 != u_in)], timeout_ms),
        _refute("delta lies in [LOWER, UPPER] of the span a = pad, b = (K-1)*d - pad",
                [*hyps, *tr.constraints,
                 z3.Or(delta < lo, delta > hi)], timeout_ms, tuple(tr.positive),
                tuple(domain)),
    )


def nine_certificate_entry(delta: int, e: int, a: int, b: int, P: int):
    """Entry ``F_delta[u', u]`` (``e = u' - u``) of the 1-D block of the certificate kernel
    ``f(p) = 1 + 2[p = 0]`` on taps ``p in [-a, b]`` (docs/theory.md §3.3): the tap at
    position ``delta*P + e``, or 0. Works on ints and on z3 terms alike."""
    p = delta * P + e
    if isinstance(p, int):
        return (3 if p == 0 else 1) if -a <= p <= b else 0
    return z3.If(z3.And(-a <= p, p <= b), z3.If(p == 0, 3, 1), 0)


NINE_COLUMNS = ("-(P-1)", "0", "P-1")  # the differences e = u' - u of the certificate


def nine_certificate_matrix(a, b, P) -> list[list]:
    """The 3 x 3 matrix ``F_delta(e)``, rows ``delta = -1, 0, 1``, columns
    ``e = -(P-1), 0, P-1``."""
    columns = (-(P - 1), 0, P - 1)
    return [[nine_certificate_entry(delta, e, a, b, P) for e in columns] for delta in (-1, 0, 1)]


def _det3(m: list[list]):
    return (m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]))


def same_padding_model(K):
    """``(a, b)``: the taps 'same' padding puts before and after the centre, as modelled in
    the z3 proof (``a = floor((K-1)/2)``, ``b = K - 1 - a``). On ints it returns ints (the
    code's ``resolve_padding`` is checked against this); on a z3 term, ``(a, b, facts)``."""
    if isinstance(K, int):
        return (K - 1) // 2, K - 1 - (K - 1) // 2
    a = z3.FreshInt("pad_lo")
    return a, K - 1 - a, _floor_is(a, K - 1, z3.IntVal(2))


def prove_patch_rank_nine(timeout_ms: int = 20_000) -> tuple[SmtResult, ...]:
    """``rho = 9`` on patch tokens for all ``P >= 2`` and ``3 <= K <= 2P+1`` (docs/theory.md
    §3.3), the two integer facts the certificate needs, for all integers:

    * 'same' padding of ``3 <= K <= 2P+1`` taps (``a = (K-1)//2`` before, ``b = K-1-a``
      after, as ``nn.Conv2d`` pads) gives ``1 <= a, b <= P``;
    * for all ``P >= 2`` and ``1 <= a, b <= P`` the certificate's 3 x 3 matrix
      (:func:`nine_certificate_matrix`; its columns ``e = -(P-1), 0, P-1`` are distinct
      differences ``u' - u`` of one patch since ``P >= 2``) has a nonzero determinant.

    The 2-D minor is the Kronecker square of this matrix (determinant ``det^6 != 0``), so
    the certificate kernel has 9 independent blocks and the generic rank is 9.
    """
    P, K, a, b = z3.Ints("P K a b")
    lo, hi, definition = same_padding_model(K)
    same = _refute(
        "'same' padding with 3 <= K <= 2P + 1 gives 1 <= a, b <= P",
        [P >= 2, K >= 3, K <= 2 * P + 1, definition, a == lo, b == hi,
         z3.Or(a < 1, a > P, b < 1, b > P)], timeout_ms)
    det = _det3(nine_certificate_matrix(a, b, P))
    nonzero = _refute(
        "for P >= 2 and 1 <= a, b <= P the certificate minor has determinant != 0",
        [P >= 2, a >= 1, a <= P, b >= 1, b <= P, det == 0], timeout_ms)
    return same, nonzero


def prove_pixel_blocks(timeout_ms: int = 20_000) -> tuple[SmtResult, ...]:
    """Pixel tokens (``P = 1``), for all integers: tap ``t`` sits at offset ``t`` and
    in-patch position 0, so distinct taps occupy distinct blocks and each block ``M_delta``
    is one tap's ``C_in x C_out`` slice (docs/theory.md §3.3). The rows ``vec(M_delta)``
    are then ``K^2`` vectors of distinct indeterminates, of generic rank
    ``min(K^2, C_in C_out)``."""
    t, t2, delta, delta2 = z3.Ints("t t2 delta delta2")
    one = z3.IntVal(1)
    return (
        _refute("with P = 1, tap t reads offset t at in-patch position 0",
                [_floor_is(delta, t, one), z3.Or(delta != t, t - delta * one != 0)],
                timeout_ms),
        _refute("with P = 1, distinct taps read distinct offsets",
                [_floor_is(delta, t, one), _floor_is(delta2, t2, one), t != t2,
                 delta == delta2], timeout_ms),
    )
