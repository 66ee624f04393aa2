"""Per-kernel minimum (docs/theory.md §3.4): every convolution needs exactly rho or rho + 1
heads."""

from __future__ import annotations

from fractions import Fraction

import torch
from sympy.polys.matrices import DomainMatrix
from torch import nn

from vitconv.numeric.conv_attention import as_attention
from vitconv.numeric.convertible import conv_geometry
from vitconv.numeric.evidence.checks import strict_float32
from vitconv.numeric.minimal import minimal_plan, positivity_certificate
from vitconv.numeric.rank import exact_weights
from vitconv.numeric.tolerances import attention_error_bound, comparison_ratio, conv_error_bound
from vitconv.proofs.theorem import CheckContext, Evidence, Obligation, Theorem
from vitconv.proofs.theorems.lower_bound import tap_kernel
from vitconv.theory.bounds import full_block_rows, span_rows
from vitconv.theory.minimal_heads import (
    Decomposition,
    PositivityCertificate,
    nonzero_rows,
    verify,
    verify_decomposition,
)

BLUR = [(s, t, float((1 + s % 2) * (1 + t % 2))) for s in range(3) for t in range(3)]


def minimal_cases(seed: int) -> list[tuple[str, nn.Conv2d, int, tuple[int, int]]]:
    """(name, conv, patch size, image size in patches), covering both outcomes."""
    torch.manual_seed(seed)
    signed = [(s, t, v * (-1) ** (s + t)) for s, t, v in BLUR]
    return [
        ("random 3x3, 2 -> 2 channels, 2x2 patches", nn.Conv2d(2, 2, 3, padding=1), 2, (3, 3)),
        ("random 7x7, 1 channel, 2x2 patches (r > P)", nn.Conv2d(1, 1, 7, padding=3), 2, (4, 4)),
        ("random 7x7, 2 -> 3 channels, 2x2 patches", nn.Conv2d(2, 3, 7, padding=3), 2, (4, 4)),
        ("random 5x5, 2 -> 2 channels, pixel tokens", nn.Conv2d(2, 2, 5, padding=2), 1, (6, 6)),
        ("blur 3x3 (one sign), pixel tokens", tap_kernel(3, BLUR), 1, (5, 5)),
        ("signed 3x3, pixel tokens", tap_kernel(3, signed), 1, (5, 5)),
        ("blur 3x3 dilated by 2, 2x2 patches", tap_kernel(3, BLUR, dilation=2), 2, (3, 3)),
        ("signed 3x3 dilated by 2, 2x2 patches", tap_kernel(3, signed, dilation=2), 2, (3, 3)),
    ]


def checker_controls() -> str | None:
    """The exact checkers must reject bad certificates (negative controls): a vector with
    ``M z`` zero somewhere, a ``y`` with a negative entry or all zero, columns that are not
    probability vectors, a product ``A W`` off by one entry. ``None`` if all are rejected."""
    one = Fraction(1)
    rows = [[one, Fraction(0)], [Fraction(0), one]]
    bad = {
        "z with M z = (1, 0)": verify(rows, PositivityCertificate("positive", (one, 0 * one))),
        "y with a negative entry": verify(rows, PositivityCertificate("farkas", (one, -one))),
        "y = 0": verify(rows, PositivityCertificate("farkas", (0 * one, 0 * one))),
        "columns not summing to 1": verify_decomposition(
            rows, Decomposition(((one, one), (0 * one, one)), ((one, 0 * one), (0 * one, one)))),
        "A W off by one entry": verify_decomposition(
            rows, Decomposition(((one, 0 * one), (0 * one, one)),
                                ((one, one), (0 * one, one)))),
    }
    accepted = [name for name, ok in bad.items() if ok]
    return f"the checkers accepted bad certificates: {accepted}" if accepted else None


def _certificates(ctx: CheckContext) -> Evidence:
    """Per kernel, all exact: rho recomputed from the full blocks (theory's own), the
    positivity certificate, and the decomposition ``Mat = A W`` with probability columns
    and exactly ``rho`` (positive) or ``rho + 1`` (Farkas) heads."""
    rows, failure = [], None
    for name, conv, P, _ in minimal_cases(ctx.seed):
        conv = conv.double()
        rank, active, cert = positivity_certificate(conv, P)
        plan = minimal_plan(conv, P)
        geom = conv_geometry(conv, P)
        weights = exact_weights(conv)
        exact_rows = span_rows(geom, weights)
        full = full_block_rows(geom, weights)
        full_active = [full[i] for i in nonzero_rows(exact_rows)]
        rho = DomainMatrix.from_list_sympy(len(full), len(full[0]), full).rank()
        heads = rho if cert.kind == "positive" else rho + 1
        problems = [
            f"rho reported {rank}, full blocks have rank {rho}" if rank != rho else "",
            "offsets with M_delta != 0 differ" if active != nonzero_rows(exact_rows) else "",
            "certificate did not verify"
            if not verify([exact_rows[i] for i in active], cert) else "",
            "A W != Mat or A not probability columns" if plan.decomposition is None
            or not verify_decomposition(full_active, plan.decomposition) else "",
            f"{plan.heads} heads, not {heads}" if plan.heads != heads
            or plan.decomposition is None or plan.decomposition.heads != heads else "",
        ]
        rows.append({"kernel": name, "plan_heads": geom.num_heads, "rho": rho,
                     "certificate": cert.kind, "minimum_heads": heads})
        if any(problems) and failure is None:
            failure = f"{name}: " + "; ".join(p for p in problems if p)
    failure = failure or checker_controls()
    outcomes = {r["certificate"] for r in rows}
    return Evidence(failure is None and outcomes == {"positive", "farkas"},
                    f"{len(rows)} kernels, exact certificates (both outcomes)",
                    examples=len(rows), counterexample=failure,
                    detail="; ".join(f"{r['kernel']}: {r['minimum_heads']} heads "
                                     f"(plan {r['plan_heads']})" for r in rows),
                    data={"kernels": rows})


def _numeric(ctx: CheckContext) -> Evidence:
    gen = torch.Generator().manual_seed(ctx.seed)
    worst, checks, failure = 0.0, 0, None
    with strict_float32():
        for name, conv, P, grid in minimal_cases(ctx.seed):
            expected = minimal_plan(conv.double(), P).heads
            for dtype in (torch.float64, torch.float32):
                c = conv.to(dtype=dtype, device=ctx.device)
                attn = as_attention(c, P, heads="minimal")
                x = torch.randn(2, c.in_channels, grid[0] * P, grid[1] * P, generator=gen,
                                dtype=dtype).to(ctx.device)
                with torch.no_grad():
                    bound = attention_error_bound(attn, c, x) + conv_error_bound(c, x, dtype)
                    ratio = comparison_ratio(attn(x), c(x), bound)
                checks += 1
                worst = max(worst, ratio)
                if (ratio > 1 or attn.num_heads != max(expected, 1)) and failure is None:
                    failure = f"{name} {dtype}: ratio {ratio:.3g}, heads {attn.num_heads}"
    return Evidence(failure is None, f"{checks} conversions with heads='minimal' vs F.conv2d",
                    examples=checks, worst=worst, bound=1.0, counterexample=failure,
                    detail="worst = max error / rounding bound")


THEOREM = Theorem(
    id="minimal_heads",
    kind="theorem",
    title=r"Per-kernel minimum: every convolution needs exactly $\rho$ or $\rho + 1$ heads",
    section="3.4",
    hypotheses=(
        r"A convolution; $\mathrm{Mat}$ the matrix with rows $\mathrm{vec}(M_\delta)$ over the "
        r"offsets with $M_\delta \ne 0$, $\rho = \operatorname{rank} \mathrm{Mat}$; MHSAs of "
        r"the standard form, positions in the scores only.",
    ),
    statement=(
        r"If the column space of $\mathrm{Mat}$ contains a strictly positive vector, $\rho$ "
        r"content-free heads express the convolution exactly and no MHSA does with fewer; "
        r"otherwise $\rho + 1$ heads do and no MHSA does with $\rho$. Both cases are decided "
        r"with an exact certificate: $z$ with $\mathrm{Mat}\,z > 0$, or $y \ge 0$, $y \ne 0$, "
        r"$y^T \mathrm{Mat} = 0$ (Farkas)."
    ),
    proof=(
        r"Head $h$ contributes $a_h(\delta) W^h$ with $a_h$ a probability vector, so $H$ "
        r"heads work iff $\mathrm{Mat} = A W$ with $H$ probability columns. If $p > 0$ lies "
        r"in the column space, spanned by $s_1, \dots, s_\rho$, then $s_i + t p > 0$ for "
        r"large $t$ and (for all but one $t$) these still span it; normalised they are the "
        r"$\rho$ heads. Otherwise the all-ones vector joins them: $\rho + 1$ heads. "
        r"Conversely, an MHSA with $\rho$ heads equal to the convolution near 0 gives, by the "
        r"Jacobian lemma, $\mathrm{Mat} = A(0) W$ with probability columns spanning the column "
        r"space; their sum is non-negative, and positive on every offset with "
        r"$M_\delta \ne 0$: a positive vector in the span, which a Farkas certificate "
        r"excludes. With the lower bound $H \ge \rho$ the minimum is exact."
    ),
    obligations=(
        Obligation("minimal_heads.certificates", "rho vs rho + 1 decided exactly per kernel",
                   "certificate", _certificates),
        Obligation("minimal_heads.numeric",
                   "the minimal construction equals F.conv2d within rounding bounds",
                   "numeric", _numeric),
    ),
    family="specific kernels",
    depends_on=("lower_bound",),
)
