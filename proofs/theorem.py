"""Theorems as data: statement, hypotheses, proof text and machine obligations.

A :class:`Theorem` holds no presentation logic. Its texts are LaTeX in which ``<<name>>``
marks a formula kept as a sympy object in ``formulas`` (usually taken from ``theory/``);
``report/`` prints them with sympy's ``latex()``, so the appendix shows exactly the objects
the checks used. Each :class:`Obligation` is a function from a :class:`CheckContext` to
:class:`Evidence`; ``proofs.checker`` runs them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import sympy as sp

_ID = re.compile(r"^[a-z][a-z0-9_]*$")
METHODS = ("certificate", "smt", "exhaustive", "symbolic", "property", "numeric", "training")
KINDS = ("lemma", "theorem", "corollary", "proposition")


@dataclass(frozen=True)
class CheckContext:
    """How thoroughly to check: ``quick`` shrinks every check (never drops one)."""

    quick: bool = False
    seed: int = 0
    device: str = "cpu"


@dataclass(frozen=True)
class Evidence:
    """What one obligation established.

    ``size`` says what was checked and how much (human-readable); ``examples`` counts the
    instances; ``worst`` and ``bound`` are the worst observed error (or margin) and what it
    was held against (``worst <= bound`` for the numeric ones); ``counterexample`` is the
    minimal failing input when the check failed; ``data`` carries tables for the report.
    """

    passed: bool
    size: str
    examples: int = 0
    worst: float | None = None
    bound: float | None = None
    detail: str = ""
    counterexample: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Obligation:
    """One machine check of a theorem, with a stable id ``<theorem id>.<slug>``."""

    id: str
    title: str
    method: str
    check: Callable[[CheckContext], Evidence]

    def __post_init__(self) -> None:
        theorem, _, slug = self.id.partition(".")
        if not (_ID.match(theorem) and _ID.match(slug)):
            raise ValueError(f"obligation id {self.id!r} must look like 'theorem_id.slug'")
        if self.method not in METHODS:
            raise ValueError(f"obligation {self.id}: method {self.method!r} not in {METHODS}")


@dataclass(frozen=True)
class Theorem:
    """A statement of DESIGN.md section ``section`` and the obligations that check it."""

    id: str
    kind: str
    title: str
    section: str
    hypotheses: tuple[str, ...]
    statement: str
    proof: str
    obligations: tuple[Obligation, ...]
    formulas: Mapping[str, sp.Basic] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _ID.match(self.id):
            raise ValueError(f"theorem id {self.id!r} must be lower_snake_case")
        if self.kind not in KINDS:
            raise ValueError(f"theorem {self.id}: kind {self.kind!r} not in {KINDS}")
        if not self.obligations:
            raise ValueError(f"theorem {self.id} has no obligations: nothing would check it")
        ids = [o.id for o in self.obligations]
        if len(set(ids)) != len(ids):
            raise ValueError(f"theorem {self.id} repeats an obligation id: {ids}")
        for o in self.obligations:
            if not o.id.startswith(self.id + "."):
                raise ValueError(f"obligation {o.id} must start with {self.id}.")
        texts = " ".join((*self.hypotheses, self.statement, self.proof))
        missing = set(re.findall(r"<<(\w+)>>", texts)) - set(self.formulas)
        if missing:
            raise ValueError(f"theorem {self.id} uses undefined formulas {sorted(missing)}")
        object.__setattr__(self, "formulas", MappingProxyType(dict(self.formulas)))
