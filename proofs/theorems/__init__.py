"""Every theorem of the project, one module each, in the order of DESIGN.md section 3."""

from proofs.theorems import construction, offset_lemma

THEOREMS = (offset_lemma.THEOREM, construction.THEOREM)

__all__ = ["THEOREMS"]
