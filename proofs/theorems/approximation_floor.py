"""Approximation floor (docs/theory.md §3.4): with ``H < rho`` heads the error cannot vanish."""

from __future__ import annotations

import torch
from torch import nn

from vitconv.numeric.evidence.floor import (
    floor_curve,
    nonnegative_rank_one_error,
    span_matrix,
    train_imitator,
)
from vitconv.numeric.rank import kernel_rank
from vitconv.proofs import tables
from vitconv.proofs.theorem import CheckContext, Evidence, Obligation, Theorem
from vitconv.theory.bounds import APPROXIMATION_FLOOR


def imitation_target(seed: int) -> nn.Conv2d:
    """A bias-free 3x3 single-channel convolution on 2x2 patches (rho = 9)."""
    torch.manual_seed(seed)
    return nn.Conv2d(1, 1, 3, padding=1, bias=False).double()


# Two-sided check (docs/theory.md §3.4). Below: no trained MHSA beats the floor (the
# theorem; only float64 rounding of both sides is allowed). Above: the optimiser must get
# close, or the lower side would pass vacuously (an untrained layer sits near 1). One head
# is held against the exact optimum of one content-free head (the floor drops its sign
# constraint); more heads against the floor itself, with a wider margin for the
# optimiser's local minima.
ONE_HEAD_MARGIN = 0.05
MARGIN = 0.25
ROUNDING = 1e-9


def floor_mismatch(conv: nn.Conv2d, floors: list[float]) -> str | None:
    """The printed floor against an independent computation: the error of the rank-H
    truncated SVD of ``Mat`` itself (Eckart-Young's optimum, reconstructed and measured),
    positive exactly below the exact rank rho; and the one-head optimum never below it."""
    _, Mat = span_matrix(conv, 2)
    U, S, Vh = torch.linalg.svd(Mat, full_matrices=False)
    total = float((Mat**2).sum())
    rho = kernel_rank(conv, 2).rank
    for H, f in enumerate(floors):
        best = (U[:, :H] * S[:H]) @ Vh[:H]
        truncated = float(((Mat - best) ** 2).sum()) / total
        if abs(truncated - f) > 1e-12:
            return f"floor({H}) = {f} but the truncated SVD leaves {truncated}"
        if (f > 1e-12) != (H < rho):
            return f"floor({H}) = {f} with exact rho = {rho}: positive exactly below rho"
    one_head = nonnegative_rank_one_error(conv, 2)
    if one_head < floors[1] - 1e-12:
        return f"one content-free head reaches {one_head} < floor(1) = {floors[1]}"
    return None


def _training(ctx: CheckContext) -> Evidence:
    conv = imitation_target(ctx.seed)
    floors = floor_curve(conv, 2)
    mismatch = floor_mismatch(conv, floors)
    if mismatch:
        return Evidence(False, "the floor itself", counterexample=mismatch)
    rho = sum(f > 1e-12 for f in floors)
    heads = (1,) if ctx.quick else tuple(range(1, rho + 1))
    steps = 200 if ctx.quick else 500
    restarts = 3 if ctx.quick else 2
    results = [train_imitator(conv, 2, H, steps=steps, seed=ctx.seed, restarts=restarts,
                              lr=0.1 if H == 1 else 0.03) for H in heads]
    one_head = nonnegative_rank_one_error(conv, 2)
    below = [r for r in results if r.small_signal_error < r.floor * (1 - ROUNDING) - ROUNDING]
    far = [r for r in results
           if r.small_signal_error > (one_head + ONE_HEAD_MARGIN if r.heads == 1
                                      else r.floor + MARGIN)]
    excess = max(r.small_signal_error - r.floor for r in results)
    bad = below + far
    return Evidence(
        not bad, f"{len(results)} trained MHSAs (H = {', '.join(map(str, heads))}), "
                 f"{steps} steps, best of {restarts} restarts", examples=len(results),
        worst=excess, bound=MARGIN,
        counterexample=(f"H={bad[0].heads}: {bad[0].small_signal_error:.4f} against floor "
                        f"{bad[0].floor:.4f} (" + ("below the floor" if bad[0] in below
                                                   else "not near it") + ")") if bad else None,
        detail=f"never below the floor; largest excess over it {excess:.3f} (relative MSE; "
               f"allowed {MARGIN}, for one head {ONE_HEAD_MARGIN} over the one-head optimum); "
               f"H = 1: floor {floors[1]:.3f}, best single content-free head {one_head:.3f} "
               f"(sign constraint), trained {results[0].small_signal_error:.3f}",
        tables=(tables.FloorCurve(tuple(floors), one_head, tuple(
            tables.TrainedHeads(r.heads, r.small_signal_error, r.floor, r.final_loss)
            for r in results)),))


THEOREM = Theorem(
    id="approximation_floor",
    kind="proposition",
    title=r"Approximation floor: $H < \rho$ heads stay above the Eckart--Young error",
    section="3.4",
    hypotheses=(
        r"Inputs with iid standard Gaussian tokens; an MHSA of the standard form with $H$ "
        r"heads, in the small-signal limit (at every scale if its scores are content-free).",
        r"$\sigma_1 \ge \sigma_2 \ge \dots$: singular values of the matrix with rows "
        r"$\mathrm{vec}(M_\delta)$.",
    ),
    statement=(
        r"The relative mean-squared error of the MHSA against the convolution (bias removed) "
        r"at an interior token is at least $<<floor>>$, which is positive for $H < \rho$."
    ),
    formulas={"floor": APPROXIMATION_FLOOR},
    proof=(
        r"In the small-signal limit the MHSA is the linear map with blocks "
        r"$N_\delta = \sum_h A^h_{q,q+\delta}(0) W_V^h W_O^h$ (Jacobian lemma). For iid "
        r"standard tokens the expected squared error is "
        r"$\sum_\delta \|M_\delta - N_\delta\|_F^2$ and the expected squared output "
        r"$\sum_\delta \|M_\delta\|_F^2 = \sum_i \sigma_i^2$. The matrix with rows "
        r"$\mathrm{vec}(N_\delta)$ has rank at most $H$, so by Eckart--Young its distance to "
        r"the matrix with rows $\mathrm{vec}(M_\delta)$ is at least $\sum_{i>H}\sigma_i^2$. "
        r"The check trains MHSAs and evaluates this error exactly from their Jacobian at 0; "
        r"the probability constraint on attention weights can keep the optimum above the "
        r"floor, which the measured excess shows."
    ),
    obligations=(
        Obligation("approximation_floor.training",
                   "trained MHSAs with H = 1..rho heads never beat the floor", "training",
                   _training),
    ),
    family="trained MHSAs",
)
