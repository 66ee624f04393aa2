"""The machine-readable report: one JSON document per verification run.

Schema ``vitconv.verify/3`` (a new number for any incompatible change)::

    {
      "schema": "vitconv.verify/3",
      "started": ISO-8601 UTC time, "seconds": wall time of all checks,
      "mode": "quick" | "full", "seed": int, "device": "cpu" | "cuda:0 (name)",
      "versions": {"python": ..., "torch": ..., "sympy": ..., "z3-solver": ..., ...},
      "passed": true only if every obligation passed,
      "verdicts": {"proved": n, "verified": n, "refuted": n, "failed": n},
      "theorems": [{"id", "kind", "title", "section", "checked",
                    "verdict": "proved" | "verified" | "refuted" | "failed",
                    "status": the verdict as printed ("verified on 24 instances (...)"),
                    "proved_by": [slugs], "family", "instances", "counterexample",
                    "obligations": [ids]}],
      "obligations": [{
          "id", "theorem", "title", "method", "scope": "all" | "instances" | "refutation",
          "status": "passed" | "failed" | "error",
          "seconds", "size", "examples", "worst", "bound", "detail",
          "counterexample", "error", "data",
          "tables": {type name: fields, e.g. "RhoTable": {"rows": [...]}}
      }]
    }

``worst``/``bound`` are null where an obligation has no numeric margin; ``data`` holds
extra values, ``tables`` the typed tables of ``vitconv.proofs.tables`` (JSON-safe values
only). Schema 3 moved the rho, head-count, gap and floor tables from ``data`` to ``tables``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from vitconv.numeric.files import atomic_write_text
from vitconv.proofs.checker import ObligationResult, RunRecord

SCHEMA = "vitconv.verify/3"


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)


def obligation_record(r: ObligationResult) -> dict[str, Any]:
    """One obligation as a JSON object of the schema above."""
    e = r.evidence
    return _json_safe({
        "id": r.obligation.id, "theorem": r.theorem_id, "title": r.obligation.title,
        "method": r.obligation.method, "scope": r.obligation.scope, "status": r.status,
        "seconds": r.seconds,
        "size": e.size if e else None, "examples": e.examples if e else 0,
        "worst": e.worst if e else None, "bound": e.bound if e else None,
        "detail": e.detail if e else "", "counterexample": e.counterexample if e else None,
        "error": r.error, "data": dict(e.data) if e else {},
        "tables": {type(t).__name__: asdict(t) for t in e.tables} if e else {},
    })


def run_document(record: RunRecord) -> dict[str, Any]:
    """The whole run as a JSON-ready dict (schema ``vitconv.verify/3``)."""
    ctx = record.context
    return {
        "schema": SCHEMA, "started": record.started, "seconds": record.seconds,
        "mode": "quick" if ctx.quick else "full", "seed": ctx.seed,
        "device": record.versions.get("device", ctx.device), "versions": record.versions,
        "passed": record.passed, "verdicts": record.verdict_counts(),
        "theorems": [_json_safe({
            "id": t.theorem.id, "kind": t.theorem.kind, "title": t.theorem.title,
            "section": t.theorem.section, "checked": t.checked, "verdict": t.verdict,
            "status": t.status_text, "proved_by": list(t.theorem.proved_by),
            "family": t.theorem.family, "instances": t.instances,
            "counterexample": t.counterexample if t.verdict == "refuted" else None,
            "obligations": [r.obligation.id for r in t.obligations]})
            for t in record.theorems],
        "obligations": [obligation_record(r) for r in record.obligations],
    }


def write_json(record: RunRecord, out_dir: Path) -> Path:
    """Write ``report.json`` atomically into ``out_dir``."""
    return atomic_write_text(out_dir / "report.json",
                             json.dumps(run_document(record), indent=2) + "\n")
