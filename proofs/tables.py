"""Typed tables the theorems hand to the report.

An obligation attaches them to its :class:`~vitconv.proofs.theorem.Evidence` (``tables``);
the report asks a run for a table by its type (``RunRecord.table(RhoTable)``), never for an
obligation by its id string, so renaming an obligation cannot silently drop a table.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RhoRow:
    """One shape of the rho table: construction heads, exact generic rho and its bound."""

    P: int
    K: int
    C_in: int
    C_out: int
    construction_heads: int
    rho: int
    upper: int
    formula: int


@dataclass(frozen=True)
class RhoTable:
    """Exact generic rank against the construction, stride and dilation 1, 'same' padding."""

    rows: tuple[RhoRow, ...]


@dataclass(frozen=True)
class HeadCountRow:
    """Construction heads (``plan_P``) and generic rho (``rho_P``) for tokens of P pixels."""

    K: int
    plan_1: int
    rho_1: int
    plan_2: int
    rho_2: int
    plan_4: int
    rho_4: int


@dataclass(frozen=True)
class HeadCounts:
    """Pixel against patch tokens, per kernel size, on ``channels -> channels`` layers."""

    rows: tuple[HeadCountRow, ...]
    channels: int


@dataclass(frozen=True)
class GapCurve:
    """A converted conv's error against the softmax gap ``alpha``, with the summed bound."""

    alphas: tuple[float, ...]
    max_error: tuple[float, ...]
    max_bound: tuple[float, ...]
    bound_ratio: tuple[float, ...]
    adversarial_ratio: tuple[float, ...]


@dataclass(frozen=True)
class TrainedHeads:
    """One trained MHSA of the approximation-floor experiment."""

    heads: int
    small_signal_error: float
    floor: float
    final_loss: float


@dataclass(frozen=True)
class FloorCurve:
    """The Eckart-Young floor per number of heads (index H), the best single head, and the
    trained MHSAs."""

    floors: tuple[float, ...]
    one_head_optimum: float
    trained: tuple[TrainedHeads, ...]


TABLE_TYPES = (RhoTable, HeadCounts, GapCurve, FloorCurve)
