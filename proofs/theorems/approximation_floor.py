"""Approximation floor (DESIGN 3.4): with ``H < rho`` heads the error cannot vanish."""

from __future__ import annotations

import torch
from torch import nn

from numeric.floor import floor_curve, nonnegative_rank_one_error, train_imitator
from proofs.theorem import CheckContext, Evidence, Obligation, Theorem
from theory.bounds import APPROXIMATION_FLOOR


def imitation_target(seed: int) -> nn.Conv2d:
    """A bias-free 3x3 single-channel convolution on 2x2 patches (rho = 9)."""
    torch.manual_seed(seed)
    return nn.Conv2d(1, 1, 3, padding=1, bias=False).double()


def _training(ctx: CheckContext) -> Evidence:
    conv = imitation_target(ctx.seed)
    floors = floor_curve(conv, 2)
    rho = sum(f > 0 for f in floors)
    heads = (1, rho) if ctx.quick else tuple(range(1, rho + 1))
    steps = 200 if ctx.quick else 600
    results = [train_imitator(conv, 2, H, steps=steps, seed=ctx.seed,
                              restarts=1 if ctx.quick or H > 3 else 3) for H in heads]
    # The floor is a theorem about exact arithmetic; allow float64 rounding of both sides.
    below = [r for r in results if r.small_signal_error < r.floor * (1 - 1e-9) - 1e-12]
    excess = max(r.small_signal_error - r.floor for r in results)
    one_head = nonnegative_rank_one_error(conv, 2)
    return Evidence(
        not below, f"{len(results)} trained MHSAs (H = {', '.join(map(str, heads))}), "
                   f"{steps} steps, best of 3 restarts for H <= 3" if not ctx.quick else
                   f"{len(results)} trained MHSAs (H = {', '.join(map(str, heads))}), "
                   f"{steps} steps", examples=len(results),
        counterexample=f"H={below[0].heads}: {below[0].small_signal_error} < floor "
                       f"{below[0].floor}" if below else None,
        detail=f"never below the floor; largest excess over it {excess:.3f} (relative MSE); "
               f"H = 1: floor {floors[1]:.3f}, best single content-free head {one_head:.3f} "
               f"(sign constraint), trained {results[0].small_signal_error:.3f}",
        data={"floors": floors, "one_head_optimum": one_head, "trained": [
            {"heads": r.heads, "small_signal_error": r.small_signal_error, "floor": r.floor,
             "final_loss": r.final_loss} for r in results]})


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
)
