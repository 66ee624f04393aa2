"""Finite softmax gap (DESIGN 3.4): how far a head with score lead ``alpha`` is from hard.

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

import math
from dataclasses import dataclass

import sympy as sp

n, alpha, D, eps = sp.symbols("n alpha D epsilon", positive=True)

TARGET_WEIGHT = 1 / (1 + (n - 1) * sp.exp(-alpha))
OFF_TARGET = (n - 1) / (sp.exp(alpha) + n - 1)
SIMPLE_BOUND = (n - 1) * sp.exp(-alpha)
BOUND_SLACK = (n - 1) ** 2 * sp.exp(-alpha) / (sp.exp(alpha) + n - 1)


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


def prove_gap_bound(values: int = 3) -> GapProof:
    """Prove the identities symbolically; the averaging identity for ``values`` keys."""
    identities = {
        "1 - w == (n-1)/(e^alpha + n - 1)": _zero(1 - TARGET_WEIGHT - OFF_TARGET),
        "(n-1)e^-alpha - (1-w) == (n-1)^2 e^-alpha/(e^alpha+n-1)":
            _zero(SIMPLE_BOUND - OFF_TARGET - BOUND_SLACK),
    }
    # The slack is a product and quotient of positive factors when n >= 1.
    identities["slack >= 0 (n >= 1)"] = bool(
        BOUND_SLACK.subs(n, sp.Symbol("m", positive=True) + 1).is_nonnegative)
    # Averaging identity for a softmax over `values` keys, target t = 0.
    s = sp.symbols(f"s0:{values}", real=True)
    v = sp.symbols(f"v0:{values}", real=True)
    A = [sp.exp(si) / sum(sp.exp(sj) for sj in s) for si in s]
    lhs = sum(a * vi for a, vi in zip(A, v, strict=True)) - v[0]
    rhs = sum(A[k] * (v[k] - v[0]) for k in range(1, values))
    identities["sum_k A_k v_k - v_t == sum_{k!=t} A_k (v_k - v_t)"] = _zero(lhs - rhs)
    # The gap needed for error eps.
    simple = sp.solve(sp.Eq(SIMPLE_BOUND * D, eps), alpha)
    exact = sp.solve(sp.Eq(OFF_TARGET * D, eps), alpha)
    identities["alpha_simple solves (n-1) e^-alpha D = eps"] = bool(
        simple) and _zero((SIMPLE_BOUND * D).subs(alpha, simple[0]) - eps)
    identities["alpha_exact solves (1-w) D = eps"] = bool(
        exact) and _zero((OFF_TARGET * D).subs(alpha, exact[0]) - eps)
    return GapProof(identities, simple[0] if simple else sp.nan,
                    exact[0] if exact else sp.nan)


def off_target_mass(keys: int, gap: float) -> float:
    """``1 - w = (n-1)/(e^alpha + n - 1)`` for ``n = keys`` (numerically stable)."""
    if keys < 1:
        raise ValueError(f"keys={keys} must be >= 1")
    return (keys - 1) / (math.exp(gap) + keys - 1) if gap < 700 else 0.0


def alpha_for_error(error: float, keys: int, spread: float) -> float:
    """The gap ``alpha = log((n-1) D / eps)`` after which a head is within ``error``."""
    if error <= 0 or spread < 0 or keys < 1:
        raise ValueError("need error > 0, spread >= 0, keys >= 1")
    if keys == 1 or spread == 0:
        return 0.0
    return max(0.0, math.log((keys - 1) * spread / error))
