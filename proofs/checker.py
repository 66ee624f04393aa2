"""Runs theorem obligations and records what happened, never hiding a failure.

A theorem counts as checked only when every one of its obligations passed; an obligation
that raises is recorded as ``error`` (with the exception) and fails its theorem.
"""

from __future__ import annotations

import platform
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from typing import TypeVar

from vitconv.proofs.theorem import CheckContext, Evidence, Obligation, Theorem

T = TypeVar("T")

STATUSES = ("passed", "failed", "error")
# How a statement is known after a run (docs/theory.md §4); "failed" when any check failed.
VERDICTS = ("proved", "verified", "refuted", "partial", "failed")
VERDICT_TEXT = {"proved": "proved for all parameters", "verified": "verified on instances",
                "refuted": "refuted", "partial": "partially checked",
                "failed": "NOT checked"}


@dataclass(frozen=True)
class ObligationResult:
    """The outcome of one obligation: status, its evidence (if it ran) and wall time."""

    theorem_id: str
    obligation: Obligation
    status: str
    seconds: float
    evidence: Evidence | None = None
    error: str | None = None

    @property
    def passed(self) -> bool:
        return self.status == "passed"


@dataclass(frozen=True)
class TheoremResult:
    """A theorem's obligations as run, and how the statement is therefore known.

    ``unproved_dependencies``: the statements of ``theorem.depends_on`` that were not
    proved in this run (set by :func:`run_checks`).
    """

    theorem: Theorem
    obligations: tuple[ObligationResult, ...]
    unproved_dependencies: tuple[str, ...] = ()

    @property
    def checked(self) -> bool:
        """True only if every obligation that ran passed."""
        return all(r.passed for r in self.obligations)

    @property
    def complete(self) -> bool:
        """Every obligation of the theorem ran (not cut by ``--only``)."""
        return len(self.obligations) == len(self.theorem.obligations)

    @property
    def verdict(self) -> str:
        """One of :data:`VERDICTS`. ``failed`` if any obligation failed; ``partial`` if some
        did not run; ``refuted`` for a refuted conjecture; ``proved`` only if every
        obligation of ``proved_by`` passed and every statement it depends on is proved;
        otherwise a passing run only *verifies* the statement on the instances sampled."""
        if not self.checked:
            return "failed"
        if not self.complete:
            return "partial"
        if self.theorem.refuted:
            return "refuted"
        if self.theorem.proved_by and not self.unproved_dependencies:
            return "proved"
        return "verified"

    @property
    def instances(self) -> int:
        """Instances checked by the obligations of scope ``instances``."""
        return sum(r.evidence.examples for r in self.obligations
                   if r.evidence is not None and r.obligation.scope == "instances")

    @property
    def counterexample(self) -> str | None:
        """For a refuted statement: the counterexample its refutation confirmed."""
        for r in self.obligations:
            if r.obligation.scope == "refutation" and r.evidence is not None:
                return r.evidence.counterexample or r.evidence.detail
        return None

    @property
    def status_text(self) -> str:
        """The verdict as printed, e.g. ``verified on 174 instances (named and random
        convolutions); 2 claims proved for all parameters; relies on lower_bound``."""
        verdict = self.verdict
        if verdict == "partial":
            return (f"partially checked: {len(self.obligations)} of "
                    f"{len(self.theorem.obligations)} obligations ran (--only)")
        if verdict == "refuted":
            return f"refuted (counterexample: {self.counterexample})"
        if verdict == "failed":
            return VERDICT_TEXT[verdict]
        family = f" ({self.theorem.family})" if self.theorem.family else ""
        if verdict == "proved":
            return VERDICT_TEXT[verdict] + (
                f"; the implementation verified on {self.instances} instances{family}"
                if self.instances else "")
        text = f"verified on {self.instances} instances{family}"
        proved = [r for r in self.obligations if r.obligation.scope == "all"]
        if proved:
            text += f"; {len(proved)} of its claims proved for all parameters"
        if self.unproved_dependencies:
            text += f"; relies on {', '.join(self.unproved_dependencies)} (not proved)"
        return text


@dataclass(frozen=True)
class RunRecord:
    """A whole verification run: when, how, on what, and every result."""

    started: str
    context: CheckContext
    versions: dict[str, str]
    theorems: tuple[TheoremResult, ...]
    seconds: float

    @property
    def obligations(self) -> tuple[ObligationResult, ...]:
        return tuple(r for t in self.theorems for r in t.obligations)

    def table(self, kind: type[T]) -> T | None:
        """The first table of type ``kind`` (``vitconv.proofs.tables``) any obligation of
        this run produced; ``None`` when its check did not run (``--only``) or failed early."""
        for r in self.obligations:
            if r.evidence is not None:
                for table in r.evidence.tables:
                    if isinstance(table, kind):
                        return table
        return None

    @property
    def passed(self) -> bool:
        return all(t.checked for t in self.theorems)

    def verdict_counts(self) -> dict[str, int]:
        """How many statements got each verdict, in :data:`VERDICTS` order."""
        counts = dict.fromkeys(VERDICTS, 0)
        for t in self.theorems:
            counts[t.verdict] += 1
        return counts

    def verdict_summary(self) -> str:
        """E.g. ``4 proved for all parameters, 7 verified on instances, 1 refuted``."""
        counts = self.verdict_counts()
        parts = [f"{counts[v]} {VERDICT_TEXT[v]}" for v in VERDICTS if counts[v]]
        return ", ".join(parts) if parts else "no statement checked"


def environment_versions(device: str = "cpu") -> dict[str, str]:
    """Versions of the interpreter and the libraries a check depends on, and the device."""
    versions = {"python": platform.python_version(), "platform": platform.platform()}
    for package in ("torch", "sympy", "z3-solver", "numpy", "scipy", "hypothesis"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    versions["device"] = device
    if device.startswith("cuda"):
        import torch  # only when asked: the proofs layer itself needs no GPU

        versions["device"] = f"{device} ({torch.cuda.get_device_name(device)})"
    return versions


def run_obligation(theorem: Theorem, obligation: Obligation, ctx: CheckContext) -> ObligationResult:
    """Run one obligation; exceptions become an ``error`` result, never a pass."""
    start = time.perf_counter()
    try:
        evidence = obligation.check(ctx)
    except Exception:
        return ObligationResult(theorem.id, obligation, "error", time.perf_counter() - start,
                                error=traceback.format_exc(limit=6))
    if not isinstance(evidence, Evidence):
        return ObligationResult(theorem.id, obligation, "error", time.perf_counter() - start,
                                error=f"check returned {type(evidence).__name__}, not Evidence")
    status = "passed" if evidence.passed else "failed"
    return ObligationResult(theorem.id, obligation, status, time.perf_counter() - start, evidence)


def run_checks(
    theorems: Iterable[Theorem],
    ctx: CheckContext,
    *,
    obligation_ids: set[str] | None = None,
    on_start: Callable[[Obligation], None] | None = None,
    on_result: Callable[[ObligationResult], None] | None = None,
) -> RunRecord:
    """Run the obligations of ``theorems`` in order (only ``obligation_ids`` if given)."""
    started = datetime.now(UTC).isoformat(timespec="seconds")
    start = time.perf_counter()
    results = []
    for theorem in theorems:
        done = []
        for obligation in theorem.obligations:
            if obligation_ids is not None and obligation.id not in obligation_ids:
                continue
            if on_start:
                on_start(obligation)
            result = run_obligation(theorem, obligation, ctx)
            if on_result:
                on_result(result)
            done.append(result)
        if done:
            verdicts = {r.theorem.id: r.verdict for r in results}
            weak = tuple(d for d in theorem.depends_on if verdicts.get(d) != "proved")
            results.append(TheoremResult(theorem, tuple(done), weak))
    return RunRecord(started, ctx, environment_versions(ctx.device), tuple(results),
                     time.perf_counter() - start)
