"""The Jacobian lemma (docs/theory.md §3.3) and the role of positions (§3.5), symbolically.

A tiny MHSA of the standard form is built with every weight, bias, relative-bias entry and
input a sympy symbol. Then:

* :func:`prove_jacobian_lemma`: ``d y_q / d x_k`` at ``X = 0`` equals
  ``sum_h A^h_{qk}(0) W_V^h W_O^h`` exactly (``simplify`` of the difference is 0): the
  attention's derivative multiplies ``sum_k' dA_{qk'}/dx_k * b_V = d(1)/dx_k * b_V = 0``.
* :func:`value_side_counterexample`: with Shaw et al.'s value-side relative embeddings
  ``y_q = sum_k A_qk (x_k W_V + r_{k-q}) W_O`` the lemma fails; an explicit rational
  instance where the difference is nonzero.
* :func:`prove_permutation_equivariance`: without any positional term, permuting the
  tokens permutes the outputs, exactly.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from itertools import permutations

import sympy as sp


def _matrix(name: str, rows: int, cols: int) -> sp.Matrix:
    return sp.Matrix(rows, cols, lambda i, j: sp.Symbol(f"{name}_{i}{j}"))


@dataclass
class SymbolicMHSA:
    """``y_q = sum_h sum_k A^h_qk (x_k W_V^h + b_V^h [+ r^h_{k-q}]) W_O^h + b_O`` on ``N``
    tokens of a 1-D sequence, scores ``(x_q W_Q + b_Q)(x_k W_K + b_K)^T / sqrt(d_k) +
    B^h[k-q]`` (``B`` omitted when ``positional=False``; ``r`` only when ``value_side``)."""

    tokens: int = 2
    d_in: int = 2
    d_k: int = 1
    d_v: int = 1
    d_out: int = 1
    heads: int = 2
    positional: bool = True
    value_side: bool = False
    x: sp.Matrix = field(init=False)

    def __post_init__(self) -> None:
        N = self.tokens
        self.x = sp.Matrix(N, self.d_in, lambda k, i: sp.Symbol(f"x_{k}{i}"))
        self.params = []
        for h in range(self.heads):
            self.params.append({
                "WQ": _matrix(f"Q{h}", self.d_in, self.d_k), "bQ": _matrix(f"bQ{h}", 1, self.d_k),
                "WK": _matrix(f"K{h}", self.d_in, self.d_k), "bK": _matrix(f"bK{h}", 1, self.d_k),
                "WV": _matrix(f"V{h}", self.d_in, self.d_v), "bV": _matrix(f"bV{h}", 1, self.d_v),
                "WO": _matrix(f"O{h}", self.d_v, self.d_out),
                "B": {d: sp.Symbol(f"B{h}_{d + N - 1}") if self.positional else sp.Integer(0)
                      for d in range(-N + 1, N)},
                "r": {d: _matrix(f"r{h}_{d + N - 1}", 1, self.d_v) if self.value_side
                      else sp.zeros(1, self.d_v) for d in range(-N + 1, N)},
            })
        self.bO = _matrix("bO", 1, self.d_out)

    def scores(self, q: int, h: int, x: sp.Matrix) -> list[sp.Expr]:
        p = self.params[h]
        query = x.row(q) * p["WQ"] + p["bQ"]
        return [(query * (x.row(k) * p["WK"] + p["bK"]).T)[0, 0] / sp.sqrt(self.d_k)
                + p["B"][k - q] for k in range(self.tokens)]

    def attention(self, q: int, h: int, x: sp.Matrix) -> list[sp.Expr]:
        e = [sp.exp(s) for s in self.scores(q, h, x)]
        total = sum(e)
        return [v / total for v in e]

    def output(self, q: int, x: sp.Matrix | None = None) -> sp.Matrix:
        """``y_q`` as a ``1 x d_out`` sympy matrix."""
        x = self.x if x is None else x
        y = self.bO
        for h, p in enumerate(self.params):
            A = self.attention(q, h, x)
            for k in range(self.tokens):
                y = y + A[k] * (x.row(k) * p["WV"] + p["bV"] + p["r"][k - q]) * p["WO"]
        return y

    def lemma_jacobian(self, q: int, k: int) -> sp.Matrix:
        """``sum_h A^h_{qk}(0) W_V^h W_O^h`` (``d_in x d_out``), the lemma's claim."""
        zero = sp.zeros(self.tokens, self.d_in)
        return sum((self.attention(q, h, zero)[k] * p["WV"] * p["WO"]
                    for h, p in enumerate(self.params)), sp.zeros(self.d_in, self.d_out))

    def jacobian_at_zero(self, q: int, k: int) -> sp.Matrix:
        """``d y_q / d x_k`` at ``X = 0`` by sympy differentiation (``d_in x d_out``)."""
        y = self.output(q)
        at_zero = {s: 0 for s in self.x}
        return sp.Matrix(self.d_in, self.d_out,
                         lambda i, j: sp.diff(y[0, j], self.x[k, i]).subs(at_zero))


@dataclass(frozen=True)
class SymbolicResult:
    """``entries`` scalar identities checked; ``proved`` if every difference simplified to 0."""

    entries: int
    proved: bool
    seconds: float
    detail: str = ""


def prove_jacobian_lemma(tokens: int = 2, d_in: int = 2, heads: int = 2) -> SymbolicResult:
    """Prove the Jacobian lemma for every ``(q, k)`` of a symbolic MHSA."""
    start = time.perf_counter()
    mhsa = SymbolicMHSA(tokens=tokens, d_in=d_in, heads=heads)
    entries = 0
    for q in range(tokens):
        for k in range(tokens):
            diff = mhsa.jacobian_at_zero(q, k) - mhsa.lemma_jacobian(q, k)
            for d in diff:
                entries += 1
                if sp.simplify(d) != 0:
                    return SymbolicResult(entries, False, time.perf_counter() - start,
                                          f"(q={q}, k={k}): {d}")
    return SymbolicResult(entries, True, time.perf_counter() - start)


@dataclass(frozen=True)
class Counterexample:
    """A rational instance at which the lemma's two sides differ by ``difference``."""

    instance: dict
    jacobian: sp.Matrix
    lemma_value: sp.Matrix
    difference: sp.Matrix


def value_side_counterexample() -> Counterexample:
    """Shaw et al.'s value-side relative embeddings break the Jacobian lemma.

    One head, two tokens, scalar features. Then ``d y_0/d x_1`` at 0 has the extra term
    ``sum_k' dA_{0k'}/dx_1 * r_{k'} W_O``, which does not cancel because ``r_0 != r_1``.
    """
    mhsa = SymbolicMHSA(tokens=2, d_in=1, heads=1, value_side=True)
    symbols = sorted((mhsa.output(0).free_symbols - set(mhsa.x)), key=str)
    # Small rationals: queries and keys that make the score depend on x_1, distinct r's.
    values = {s: sp.Rational(1 + i % 3, 2) for i, s in enumerate(symbols)}
    r = mhsa.params[0]["r"]  # value-side embeddings by offset k - q: q = 0 sees 0 and 1
    values.update({r[0][0, 0]: sp.Integer(0), r[1][0, 0]: sp.Integer(1)})
    jac = mhsa.jacobian_at_zero(0, 1).subs(values)
    lemma = mhsa.lemma_jacobian(0, 1).subs(values)
    return Counterexample({str(k): v for k, v in values.items()}, sp.simplify(jac),
                          sp.simplify(lemma), sp.simplify(jac - lemma))


def prove_permutation_equivariance(tokens: int = 3, heads: int = 1) -> SymbolicResult:
    """Without positional terms, ``y(pi x) = pi y(x)`` for every permutation ``pi``."""
    start = time.perf_counter()
    mhsa = SymbolicMHSA(tokens=tokens, d_in=1, heads=heads, positional=False)
    outputs = [mhsa.output(q) for q in range(tokens)]
    entries = 0
    for perm in permutations(range(tokens)):
        permuted = sp.Matrix.vstack(*[mhsa.x.row(perm[k]) for k in range(tokens)])
        for q in range(tokens):
            entries += 1
            # token q of the permuted input is token perm[q] of the original
            diff = mhsa.output(q, permuted) - outputs[perm[q]]
            if any(sp.simplify(d) != 0 for d in diff):
                return SymbolicResult(entries, False, time.perf_counter() - start,
                                      f"permutation {perm}, output {q}")
    return SymbolicResult(entries, True, time.perf_counter() - start)


def _statement_symbols():
    h, H = sp.symbols("h H", integer=True, positive=True)
    A = sp.Symbol("A^{h}_{qk}(0)", commutative=False)
    W_V = sp.Symbol("W_V^h", commutative=False)
    W_O = sp.Symbol("W_O^h", commutative=False)
    jac = sp.Symbol(r"\left.\frac{\partial y_q}{\partial x_k}\right|_{X=0}", commutative=False)
    return sp.Eq(jac, sp.Sum(A * W_V * W_O, (h, 1, H)), evaluate=False)


# The lemma's statement as a sympy object (noncommutative: the factor order is the matrix
# product's), printed into the appendix by report/.
LEMMA_STATEMENT = _statement_symbols()
