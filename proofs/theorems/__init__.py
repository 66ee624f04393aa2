"""Every statement of the project, one module each, in the order of docs/theory.md §3."""

from vitconv.proofs.theorems import (
    approximation_floor,
    construction,
    jacobian_lemma,
    lower_bound,
    minimal_heads,
    necessity,
    network_transfer,
    offset_lemma,
    pixel_vs_patch,
    softmax_gap,
    unified_rank,
)

THEOREMS = (
    offset_lemma.THEOREM,
    construction.THEOREM,
    jacobian_lemma.THEOREM,
    lower_bound.THEOREM,
    pixel_vs_patch.THEOREM,
    unified_rank.THEOREM,
    unified_rank.FORMULA,
    softmax_gap.THEOREM,
    approximation_floor.THEOREM,
    minimal_heads.THEOREM,
    necessity.THEOREM,
    network_transfer.THEOREM,
)

__all__ = ["THEOREMS"]
