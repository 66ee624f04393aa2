"""Theorem registry and proof checker: statements, proof texts and machine obligations."""

from vitconv.proofs.checker import RunRecord, run_checks
from vitconv.proofs.registry import Registry, default_registry
from vitconv.proofs.theorem import CheckContext, Evidence, Obligation, Theorem

__all__ = ["CheckContext", "Evidence", "Obligation", "Registry", "RunRecord", "Theorem",
           "default_registry", "run_checks"]
