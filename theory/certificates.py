"""A small checker for integer inequality proofs with explicit certificates.

A proof is a list of hypotheses and steps over integer-valued sympy expressions, each fact
read as ``expr >= 0``. A step is accepted only when sympy proves, by ``expand``, an exact
polynomial identity:

* direct step, claim ``g >= 0``: ``g - sum_k c_k * prod(facts_k)`` expands to a rational
  constant ``>= 0`` (every ``c_k >= 0``, so the sum is non-negative);
* step by contradiction, claim ``g >= 0`` with ``g`` integer-valued: add the negation
  ``-g - 1 >= 0`` (integrality) and show ``sum_k c_k * prod(facts_k)`` expands to a
  negative constant, which no sum of non-negative terms can be.

These are Positivstellensatz certificates of bounded degree; checking one needs nothing
but polynomial arithmetic, so a reader can recheck every step by hand.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import sympy as sp

NEGATION = "neg"  # name under which a contradiction step may use its negated claim

Term = tuple[sp.Rational | int, tuple[str, ...]]


@dataclass(frozen=True)
class Fact:
    """A hypothesis ``expr >= 0`` with a human reading of it."""

    name: str
    expr: sp.Expr
    text: str


@dataclass(frozen=True)
class Step:
    """A claim ``claim >= 0`` and the certificate that proves it from earlier facts."""

    name: str
    claim: sp.Expr
    certificate: tuple[Term, ...]
    text: str
    by_contradiction: bool = False


@dataclass(frozen=True)
class StepCheck:
    """Outcome of checking one step: the residual constant and whether it proves the claim."""

    step: Step
    residual: sp.Expr
    ok: bool
    reason: str


@dataclass(frozen=True)
class InequalityProof:
    """Hypotheses plus steps; every step may use the hypotheses and all earlier steps."""

    name: str
    hypotheses: tuple[Fact, ...]
    steps: tuple[Step, ...]

    def check(self) -> tuple[StepCheck, ...]:
        """Check every step in order; a failed step is reported, never silently skipped."""
        facts: dict[str, sp.Expr] = {h.name: h.expr for h in self.hypotheses}
        results = []
        for step in self.steps:
            result = check_step(step, facts)
            results.append(result)
            facts[step.name] = step.claim
        return tuple(results)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.check())


def _certificate_sum(certificate: Sequence[Term], facts: Mapping[str, sp.Expr]) -> sp.Expr:
    total = sp.Integer(0)
    for coefficient, names in certificate:
        coefficient = sp.Rational(coefficient)
        if coefficient < 0:
            raise ValueError(f"certificate coefficient {coefficient} is negative")
        product = sp.Integer(1)
        for name in names:
            if name not in facts:
                raise KeyError(f"certificate uses unknown fact {name!r}")
            product *= facts[name]
        total += coefficient * product
    return total


def check_step(step: Step, facts: Mapping[str, sp.Expr]) -> StepCheck:
    """Check one step against the known facts (see the module docstring for the rules)."""
    known = dict(facts)
    try:
        if step.by_contradiction:
            known[NEGATION] = -step.claim - 1
            residual = sp.expand(_certificate_sum(step.certificate, known))
            ok = residual.is_Rational and residual < 0
            reason = "certificate sums to a negative constant" if ok else "no contradiction"
        else:
            residual = sp.expand(step.claim - _certificate_sum(step.certificate, known))
            ok = residual.is_Rational and residual >= 0
            reason = "claim minus certificate is a constant >= 0" if ok else "residual not >= 0"
    except (KeyError, ValueError) as err:
        return StepCheck(step, sp.nan, False, str(err))
    return StepCheck(step, residual, bool(ok), reason)
