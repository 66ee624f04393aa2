"""Evidence from the solvers and checkers of ``theory``, built one way for every theorem."""

from __future__ import annotations

from collections.abc import Sequence

from vitconv.proofs.theorem import Evidence
from vitconv.theory.smt import SmtResult


def smt_evidence(results: Sequence[SmtResult], size: str) -> Evidence:
    """Passed iff z3 proved every claim; the first failure (with z3's answer and model, if
    any) is the counterexample; the claims and the slowest solver time are the detail."""
    failed = [r for r in results if not r.proved]
    slowest = max((r.seconds for r in results), default=0.0)
    return Evidence(
        not failed, f"{len(results)} claims for all integers (z3): {size}",
        examples=len(results),
        detail="; ".join(r.claim for r in results) + f" (slowest {slowest:.2f} s)",
        counterexample=(f"{failed[0].claim}: z3 said {failed[0].answer} "
                        f"{failed[0].counterexample or ''}").strip() if failed else None,
        data={"claims": [(r.claim, r.answer, r.seconds) for r in results]})
