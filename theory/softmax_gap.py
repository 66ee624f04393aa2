"""Finite softmax gap (docs/theory.md §3.4): how far a head with score lead ``alpha`` is from hard.

A head whose target key scores ``alpha`` above each of the other ``n - 1`` keys puts weight
``w = 1/(1 + (n-1) e^{-alpha})`` on the target. Then (each identity proved by sympy):

* ``1 - w = (n-1)/(e^alpha + n - 1)``                          (:data:`OFF_TARGET`)
* ``(n-1) e^{-alpha} - (1 - w) = (n-1)^2 e^{-alpha}/(e^alpha + n - 1) >= 0`` (the bound)
* ``sum_k A_k v_k - v_t = sum_{k != t} A_k (v_k - v_t)``, so the head's output is off by at
  most ``(1 - w) max_k |v_k - v_t|`` (equality when every other value is ``v_t + D``);
* the gap that guarantees error ``eps`` for values spread ``D``:
  ``alpha = log((n-1) D / eps)`` from the simple bound, ``log((n-1)(D/eps - 1))`` exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

n, alpha, D, eps = sp.symbols("n alpha D epsilon", positive=True)

TARGET_WEIGHT = 1 / (1 + (n - 1) * sp.exp(-alpha))
OFF_TARGET = (n - 1) / (sp.exp(alpha) + n - 1)
SIMPLE_BOUND = (n - 1) * sp.exp(-alpha)
BOUND_SLACK = (n - 1) ** 2 * sp.exp(-alpha) / (sp.exp(alpha) + n - 1)
ALPHA_SIMPLE = sp.log((n - 1) * D / eps)       # solves (n-1) e^-alpha D = eps
ALPHA_EXACT = sp.log((n - 1) * (D / eps - 1))  # solves (1 - w) D = eps
# The averaging identity over any number of keys (k indexes them, t is the target).
_k = sp.Symbol("k", integer=True, positive=True)
_A, _v, _vt = sp.IndexedBase("A"), sp.IndexedBase("v"), sp.Symbol("v_t")
AVERAGING = sp.Eq(sp.Sum(_A[_k] * _v[_k], (_k, 1, n)) - _vt * sp.Sum(_A[_k], (_k, 1, n)),
                  sp.Sum(_A[_k] * (_v[_k] - _vt), (_k, 1, n)))


@dataclass(frozen=True)
class GapProof:
    """Each identity of the module docstring and whether sympy reduced it to 0."""

    identities: dict[str, bool]
    alpha_simple: sp.Expr
    alpha_exact: sp.Expr

    @property
    def proved(self) -> bool:
        return all(self.identities.values())


def _zero(expr: sp.Expr) -> bool:
    return sp.simplify(expr) == 0


def prove_gap_bound() -> GapProof:
    """Prove the identities symbolically, in free symbols ``n, alpha, D, eps`` (and a sum
    over ``n`` keys for the averaging identity), on the module's printed objects."""
    identities = {
        "1 - w == (n-1)/(e^alpha + n - 1)": _zero(1 - TARGET_WEIGHT - OFF_TARGET),
        "(n-1)e^-alpha - (1-w) == (n-1)^2 e^-alpha/(e^alpha+n-1)":
            _zero(SIMPLE_BOUND - OFF_TARGET - BOUND_SLACK),
    }
    # The slack is a product and quotient of positive factors when n >= 1.
    identities["slack >= 0 (n >= 1)"] = bool(
        BOUND_SLACK.subs(n, sp.Symbol("m", positive=True) + 1).is_nonnegative)
    # sum_k A_k v_k - v_t sum_k A_k == sum_k A_k (v_k - v_t); with sum_k A_k = 1 the head's
    # error is sum_{k != t} A_k (v_k - v_t) (the k = t term vanishes).
    identities["sum_k A_k v_k - v_t sum_k A_k == sum_k A_k (v_k - v_t), any n"] = _zero(
        AVERAGING.lhs - AVERAGING.rhs)
    identities["alpha_simple solves (n-1) e^-alpha D = eps"] = _zero(
        (SIMPLE_BOUND * D).subs(alpha, ALPHA_SIMPLE) - eps)
    identities["alpha_exact solves (1-w) D = eps"] = _zero(
        (OFF_TARGET * D).subs(alpha, ALPHA_EXACT) - eps)
    return GapProof(identities, ALPHA_SIMPLE, ALPHA_EXACT)


_OFF_TARGET = sp.lambdify((n, alpha), OFF_TARGET, modules="math")
_ALPHA_SIMPLE = sp.lambdify((n, D, eps), ALPHA_SIMPLE, modules="math")


def off_target_mass(keys: int, gap: float) -> float:
    """``1 - w = (n-1)/(e^alpha + n - 1)`` for ``n = keys`` (numerically stable)."""
    if keys < 1:
        raise ValueError(f"keys={keys} must be >= 1")
    return float(_OFF_TARGET(keys, gap)) if gap < 700 else 0.0  # the printed formula


def alpha_for_error(error: float, keys: int, spread: float) -> float:
    """The gap ``alpha = log((n-1) D / eps)`` after which a head is within ``error``."""
    if error <= 0 or spread < 0 or keys < 1:
        raise ValueError("need error > 0, spread >= 0, keys >= 1")
    if keys == 1 or spread == 0:
        return 0.0
    return max(0.0, float(_ALPHA_SIMPLE(keys, spread, error)))
