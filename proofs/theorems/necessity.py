"""Necessity of the two ingredients (docs/theory.md §3.5): positional terms, and several heads."""

from __future__ import annotations

import torch

from vitconv.numeric.evidence.jacobian import autograd_jacobian, jacobian_error_bound, random_mhsa
from vitconv.numeric.minimal import minimal_plan
from vitconv.proofs.theorem import CheckContext, Evidence, Obligation, Theorem
from vitconv.proofs.theorems.lower_bound import rho_table, tap_kernel
from vitconv.proofs.theorems.minimal_heads import BLUR
from vitconv.theory.bounds import symbolic_generic_rank
from vitconv.theory.geometry import ConvGeometry
from vitconv.theory.jacobian import prove_permutation_equivariance


def _equivariance(ctx: CheckContext) -> Evidence:
    r = prove_permutation_equivariance(tokens=3, heads=1 if ctx.quick else 2)
    return Evidence(r.proved, f"{r.entries} (permutation, output) pairs on 3 tokens",
                    examples=r.entries, counterexample=r.detail or None,
                    detail="y(pi x)_q - y(x)_pi(q) simplifies to 0 for every permutation pi")


def _no_position_jacobian(ctx: CheckContext) -> Evidence:
    """Without positions every key gets the same Jacobian block at 0, so no off-centre
    ``M_delta`` can differ from the far (zero) blocks: only ``M_delta = 0`` is possible."""
    gen = torch.Generator().manual_seed(ctx.seed)
    worst, checks = 0.0, 0
    for grid, heads in (((3, 3), 2), ((4, 4), 3), ((3, 5), 4)):
        att = random_mhsa(4, 3, heads, 2, 2, grid, gen, torch.float64).to(ctx.device)
        with torch.no_grad():
            att.rel_bias.zero_()  # no positional term at all
        J = autograd_jacobian(att, grid, (1, 1)).detach()              # (Nk, d_in, d_out)
        bound = jacobian_error_bound(att, grid, (1, 1))
        # exact blocks are all equal, so |J_k - J_0| <= bound_k + bound_0
        worst = max(worst, float(((J - J[0]).abs() / (bound + bound[0])).max()))
        checks += 1
    return Evidence(worst <= 1.0, f"{checks} MHSAs without positional terms",
                    examples=checks, worst=worst, bound=1.0,
                    detail="max over keys of |J_qk - J_q0| / (rounding bounds of both)")


def _several_heads(ctx: CheckContext) -> Evidence:
    rows = [r for r in rho_table(ctx.quick, ctx.seed) if r.dilation == 1]
    crossing = [r for r in rows if r.construction_heads > 1]
    need = [r for r in crossing if r.patch_size >= 2 or r.in_channels * r.out_channels >= 2]
    single = [r for r in crossing if r not in need]
    ok = all(r.rho >= 2 for r in need) and all(r.rho == 1 for r in single)
    return Evidence(ok, f"{len(need)} shapes crossing a patch border need rho >= 2",
                    examples=len(crossing),
                    detail=f"the {len(single)} single-channel pixel shapes have rho = 1: one "
                           "head suffices there exactly for kernels of one sign "
                           "(see minimal_heads)")


def _dilated_one_head(ctx: CheckContext) -> Evidence:
    """Where (ii) stops: with dilation one head can be enough."""
    geom = ConvGeometry.from_conv_params(kernel_size=3, patch_size=2, padding="same",
                                         dilation=2)
    rho = symbolic_generic_rank(geom)
    blur = tap_kernel(3, BLUR, dilation=2)
    heads = minimal_plan(blur, 2).heads
    return Evidence(rho == 1 and heads == 1 and geom.num_heads == 9,
                    "3x3 kernel dilated by 2 on 2x2 patches", examples=2,
                    detail=f"generic rho = {rho} (exact, over Q(w)) across {geom.num_heads} "
                           f"offsets; a dilated blur needs {heads} head",
                    counterexample=None if rho == 1 and heads == 1 else
                    f"rho {rho}, blur heads {heads}")


THEOREM = Theorem(
    id="necessity",
    kind="proposition",
    title="Both ingredients are needed: positional scores and several heads",
    section="3.5",
    hypotheses=(r"An MHSA of the standard form on $N$ tokens.",),
    statement=(
        r"(i) Without any positional term the MHSA is permutation-equivariant, so it can "
        r"equal a convolution near 0 only if $M_\delta = 0$ for every $\delta \ne 0$. "
        r"(ii) One head is not enough for a generic kernel with dilation 1 that crosses a "
        r"patch border, when $P \ge 2$ or $C_{in} C_{out} \ge 2$: then $\rho \ge 2$. With "
        r"dilation it can be: a $3\times3$ kernel dilated by 2 on $2\times2$ patches has "
        r"$\rho = 1$, and one head reproduces it when its entries have one sign."
    ),
    proof=(
        r"(i) Scores, softmax and values treat tokens alike, so $y(\pi X) = \pi\, y(X)$. The "
        r"Jacobian of an equivariant map has equal off-diagonal blocks "
        r"$J_{qk} = D$ ($k \ne q$); equality with a convolution forces "
        r"$D = M_\delta$ for the neighbours and $D = 0$ for a key beyond the kernel's reach, "
        r"hence $M_\delta = 0$ for $\delta \ne 0$. For the standard form at 0 even the "
        r"diagonal block agrees (uniform attention), which the numeric check observes. "
        r"(ii) From the lower bound and the table of $\rho$. For single-channel pixel tokens "
        r"$\rho = 1$, and one head suffices exactly when the kernel has one sign. With "
        r"dilation 2 on $2\times2$ patches every tap position is even, so $u' = u$ and "
        r"$M_\delta = w_\delta I$: $\rho = 1$, and a kernel of one sign is one head "
        r"(Theorem~\ref{thm:minimal_heads})."
    ),
    obligations=(
        Obligation("necessity.permutation_equivariance",
                   "no positions: permuting tokens permutes outputs (symbolic)", "symbolic",
                   _equivariance),
        Obligation("necessity.no_position_jacobian",
                   "no positions: every key has the same Jacobian block at 0", "numeric",
                   _no_position_jacobian),
        Obligation("necessity.several_heads", "rho >= 2 for kernels crossing a patch border",
                   "certificate", _several_heads),
        Obligation("necessity.dilated_one_head",
                   "with dilation one head can suffice (rho = 1, exact)", "symbolic",
                   _dilated_one_head),
    ),
    family="small MHSAs and the rho table",
)
