"""Theorems as data: statement, hypotheses, proof text, machine obligations and how the
statement is known (proved for all parameters, verified on instances, or refuted).

A :class:`Theorem` holds no presentation logic. Its texts are LaTeX in which ``<<name>>``
marks a formula kept as a sympy object in ``formulas`` (usually taken from ``theory/``);
``report/`` prints them with sympy's ``latex()``, so the appendix shows exactly the objects
the checks used. Each :class:`Obligation` is a function from a :class:`CheckContext` to
:class:`Evidence`; ``vitconv.proofs.checker`` runs them.
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
KINDS = ("lemma", "theorem", "corollary", "proposition", "conjecture")
# What a passing obligation establishes: its claim for ALL parameters (z3 over unbounded
# integers, a parametric certificate, a symbolic identity in free symbols), its claim on the
# finitely many INSTANCES it ran, or a REFUTATION (a confirmed counterexample).
SCOPES = ("all", "instances", "refutation")
# Only these methods can establish a claim for all parameters; nothing sampled may.
PROOF_METHODS = ("smt", "certificate", "symbolic")


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
    minimal failing input when the check failed; ``data`` carries extra figures for the
    JSON report; ``tables`` the typed tables of ``vitconv.proofs.tables`` the report reads.
    """

    passed: bool
    size: str
    examples: int = 0
    worst: float | None = None
    bound: float | None = None
    detail: str = ""
    counterexample: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    tables: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Obligation:
    """One machine check of a theorem, with a stable id ``<theorem id>.<slug>``.

    ``scope`` says what it establishes when it passes (:data:`SCOPES`): ``"all"`` only for
    a method in :data:`PROOF_METHODS`, so that nothing sampled can be labelled proved.
    """

    id: str
    title: str
    method: str
    check: Callable[[CheckContext], Evidence]
    scope: str = "instances"

    def __post_init__(self) -> None:
        theorem, _, slug = self.id.partition(".")
        if not (_ID.match(theorem) and _ID.match(slug)):
            raise ValueError(f"obligation id {self.id!r} must look like 'theorem_id.slug'")
        if self.method not in METHODS:
            raise ValueError(f"obligation {self.id}: method {self.method!r} not in {METHODS}")
        if self.scope not in SCOPES:
            raise ValueError(f"obligation {self.id}: scope {self.scope!r} not in {SCOPES}")
        if self.scope == "all" and self.method not in PROOF_METHODS:
            raise ValueError(f"obligation {self.id}: a {self.method} check samples instances "
                             f"and cannot have scope 'all' (only {PROOF_METHODS} can)")

    @property
    def slug(self) -> str:
        return self.id.partition(".")[2]


@dataclass(frozen=True)
class Theorem:
    """A statement of ``docs/theory.md`` section ``section`` and the obligations that check it.

    How the statement is known is declared here and decided by the checker
    (``vitconv.proofs.checker.TheoremResult.status``):

    * ``proved_by``: slugs of the obligations (each of scope ``"all"``) that together prove
      the statement for all parameters; empty when it is only verified on instances.
    * ``family``: the instances the other checks sample, named for the report (e.g.
      "24 named convolutions and random ones"), for the *verified on N instances* label.
    * ``refuted``: the statement is a conjecture the checks refute; it needs an obligation
      of scope ``"refutation"``.
    * ``depends_on``: ids of the statements its proof uses; it is *proved* only if they all
      are (a corollary of a verified theorem is verified, whatever its own part).
    """

    id: str
    kind: str
    title: str
    section: str
    hypotheses: tuple[str, ...]
    statement: str
    proof: str
    obligations: tuple[Obligation, ...]
    formulas: Mapping[str, sp.Basic] = field(default_factory=dict)
    proved_by: tuple[str, ...] = ()
    family: str = ""
    refuted: bool = False
    depends_on: tuple[str, ...] = ()

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
        by_slug = {o.slug: o for o in self.obligations}
        for slug in self.proved_by:
            if slug not in by_slug or by_slug[slug].scope != "all":
                raise ValueError(f"theorem {self.id}: proved_by names {slug!r}, which is not "
                                 "an obligation of scope 'all'")
        if self.refuted and not any(o.scope == "refutation" for o in self.obligations):
            raise ValueError(f"theorem {self.id} is refuted but has no refutation obligation")
        if self.refuted and self.proved_by:
            raise ValueError(f"theorem {self.id} cannot be both proved and refuted")
        if not self.proved_by and not self.refuted and not self.family:
            raise ValueError(f"theorem {self.id} is checked on instances only: name the "
                             "family it samples")
        texts = " ".join((*self.hypotheses, self.statement, self.proof))
        missing = set(re.findall(r"<<(\w+)>>", texts)) - set(self.formulas)
        if missing:
            raise ValueError(f"theorem {self.id} uses undefined formulas {sorted(missing)}")
        object.__setattr__(self, "formulas", MappingProxyType(dict(self.formulas)))
