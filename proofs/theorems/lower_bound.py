"""The lower bound on heads (docs/theory.md §3.3): ``H >= rho = dim span{M_delta}``."""

from __future__ import annotations

from fractions import Fraction
from functools import cache

import torch
from torch import nn

from vitconv.numeric.evidence.jacobian import check_rank, random_mhsa
from vitconv.numeric.rank import kernel_rank
from vitconv.proofs import tables
from vitconv.proofs.theorem import CheckContext, Evidence, Obligation, Theorem
from vitconv.proofs.theorems.jacobian_lemma import MHSA_SIZES
from vitconv.theory.bounds import RhoRow, rho_row
from vitconv.theory.exact_rank import RankCertificate, exact_rank, verify_certificate


@cache
def rho_table(quick: bool, seed: int = 0) -> tuple[RhoRow, ...]:
    """``rho`` against ``(P, K, C_in, C_out)``, 'same' padding, stride and dilation 1:
    pixel input (``P = 1``) and patches, up to kernels reaching past the patch (``r > P``)."""
    patches = (1, 2, 3) if quick else (1, 2, 3, 4)
    kernels = (1, 3, 4, 5, 7) if quick else (1, 2, 3, 4, 5, 6, 7, 9)
    channels = ((1, 1), (3, 8)) if quick else ((1, 1), (1, 4), (3, 8))
    return tuple(rho_row(K, P, *ch, seed=seed) for P in patches for K in kernels
                 for ch in channels)


def table_data(rows: tuple[RhoRow, ...]) -> tables.RhoTable:
    """The report's view of the rho table (``vitconv.proofs.tables``)."""
    return tables.RhoTable(tuple(
        tables.RhoRow(r.patch_size, r.kernel_size, r.in_channels, r.out_channels,
                      r.construction_heads, r.rho, r.upper, r.issue_formula) for r in rows))


def rank_checker_control() -> str | None:
    """``verify_certificate`` must reject wrong certificates (negative controls): a claimed
    rank one too high, a singular minor, a wrong row combination."""
    rows = [[1, 2], [2, 4], [0, 1]]
    good = exact_rank(rows)
    wrong = {
        "rank + 1": RankCertificate(good.rank + 1, good.pivot_rows, good.pivot_cols,
                                    good.minor_det, good.combinations),
        "singular minor": RankCertificate(2, (0, 1), (0, 1), Fraction(0), ((2, (0, 0)),)),
        "wrong combination": RankCertificate(
            good.rank, good.pivot_rows, good.pivot_cols, good.minor_det,
            tuple((r, tuple(c + 1 for c in coeffs)) for r, coeffs in good.combinations)),
    }
    if not verify_certificate(rows, good):
        return "the rank checker rejects a correct certificate"
    accepted = [name for name, cert in wrong.items() if verify_certificate(rows, cert)]
    return f"the rank checker accepted wrong certificates: {accepted}" if accepted else None


def _table(ctx: CheckContext) -> Evidence:
    rows = rho_table(ctx.quick, ctx.seed)
    control = rank_checker_control()
    if control:
        return Evidence(False, "negative controls of the rank checker", counterexample=control)
    bad = [r for r in rows if not (r.certificate_checked and r.certified
                                   and r.rho <= r.construction_heads)]
    return Evidence(
        not bad, f"{len(rows)} shapes, exact rank with rechecked certificates",
        examples=len(rows),
        counterexample=str(bad[0]) if bad else None,
        detail="each rank: nonzero minor (rank >= rho) and every other row an explicit "
               "rational combination (rank <= rho); rho equals the structural upper bound",
        tables=(table_data(rows),))


def _jacobian_rank(ctx: CheckContext) -> Evidence:
    gen = torch.Generator().manual_seed(ctx.seed)
    checks, failure, margin = 0, None, float("inf")
    for grid, d_in, d_out, heads, dv, dk in MHSA_SIZES:
        if heads >= min(grid[0] * grid[1], d_in * d_out):
            continue  # rank <= H would be vacuous
        for dtype in (torch.float64, torch.float32):
            att = random_mhsa(d_in, d_out, heads, dv, dk, grid, gen, dtype).to(ctx.device)
            r = check_rank(att, grid, (grid[0] // 2, grid[1] // 2))
            checks += 1
            margin = min(margin, r.sigma_h / r.tolerance)
            if not r.passed and failure is None:
                failure = f"grid {grid}, {heads} heads, {dtype}: {r}"
    return Evidence(failure is None, f"{checks} random content-dependent MHSAs",
                    examples=checks, counterexample=failure,
                    detail=f"sigma_(H+1) below its rounding tolerance every time; sigma_H "
                           f"exceeds it by a factor >= {margin:.1e} (rank exactly H)")


def tap_kernel(shape: int, taps: list[tuple[int, int, float]], dilation: int = 1
               ) -> nn.Conv2d:
    """A bias-free single-channel float64 ``shape x shape`` conv with only the given taps."""
    conv = nn.Conv2d(1, 1, shape, padding=dilation * (shape // 2), dilation=dilation,
                     bias=False).double()
    with torch.no_grad():
        conv.weight.zero_()
        for s, t, v in taps:
            conv.weight[0, 0, s, t] = v
    return conv


def specific_kernels() -> list[tuple[str, nn.Conv2d, int]]:
    """Kernels whose ``rho`` drops below the generic value (zero taps, dilation)."""
    full = [(s, t, 1.0 + s + 3 * t) for s in range(3) for t in range(3)]
    return [
        ("generic 3x3 (reference)", tap_kernel(3, [(s, t, v * (-1) ** s) for s, t, v in full]), 2),
        ("centre tap only", tap_kernel(3, [(1, 1, 2.0)]), 2),
        ("cross (plus) shape", tap_kernel(3, [(1, 0, 1.0), (0, 1, -2.0), (1, 1, 3.0),
                                           (2, 1, 5.0), (1, 2, -7.0)]), 2),
        ("corners zero", tap_kernel(3, [(s, t, v) for s, t, v in full if (s - 1) * (t - 1) == 0]),
         2),
        ("middle row only (a 1x3 kernel)", tap_kernel(3, [(1, 0, 2.0), (1, 1, -1.0), (1, 2, 4.0)]),
         2),
        ("3x3 dilated by 2", tap_kernel(3, full, dilation=2), 2),
    ]


def _specific(ctx: CheckContext) -> Evidence:
    rows = []
    for name, conv, P in specific_kernels():
        bound = kernel_rank(conv, P)
        rows.append({"kernel": name, "patch": P, "plan_heads": bound.offsets, "rho": bound.rank})
    generic = rows[0]["rho"]
    dropped = [r for r in rows[1:] if r["rho"] < generic]
    return Evidence(len(dropped) == len(rows) - 1 and generic == 9,
                    f"{len(rows)} kernels on 2x2 patches, exact rank of each",
                    examples=len(rows),
                    detail="; ".join(f"{r['kernel']}: rho {r['rho']}" for r in rows),
                    data={"kernels": rows})


THEOREM = Theorem(
    id="lower_bound",
    kind="theorem",
    title=r"Lower bound: fewer heads than $\rho$ cannot express the convolution",
    section="3.3",
    hypotheses=(
        r"An MHSA of the standard form with $H$ heads, positions in the scores only.",
        r"It equals the convolution $y_q = \sum_\delta x_{q+\delta} M_\delta + \beta$ on a "
        r"neighbourhood of $X = 0$, at a query $q$ whose neighbours $q + \delta$ are all tokens.",
    ),
    statement=(
        r"$H \ge \rho := \dim \operatorname{span}\{M_\delta\}$, the rank of the matrix whose "
        r"rows are $\mathrm{vec}(M_\delta)$; for a generic kernel of the shape this is the "
        r"generic rank, tabulated in Table~\ref{tab:rho}."
    ),
    proof=(
        r"Differentiate both sides at 0. By the Jacobian lemma, "
        r"$M_\delta = \sum_{h=1}^H A^h_{q,q+\delta}(0)\, W_V^h W_O^h$ for every $\delta$, so "
        r"every $M_\delta$ lies in the span of the $H$ matrices $W_V^h W_O^h$ and "
        r"$\rho \le H$. The values of $\rho$ are exact ranks over $\mathbb{Q}$ of the matrix "
        r"whose rows are $\mathrm{vec}(M_\delta)$, computed at a random integer kernel: a "
        r"nonzero $\rho \times \rho$ minor proves that the polynomial minor is not identically "
        r"zero, so the generic rank is at least $\rho$; it is at most the structural bound "
        r"(rows; distinct nonzero columns), which it meets. A specific kernel can have a "
        r"smaller $\rho$ (zero taps, dilation), computed exactly from its weights."
    ),
    obligations=(
        Obligation("lower_bound.rho_table", "rho against (P, K, C_in, C_out), certified",
                   "certificate", _table),
        Obligation("lower_bound.jacobian_rank",
                   "random MHSAs: the stacked Jacobian at 0 has rank <= H", "numeric",
                   _jacobian_rank),
        Obligation("lower_bound.specific_kernels", "rho drops for specific kernels (exact)",
                   "certificate", _specific),
    ),
    family="the rho table, random MHSAs and specific kernels",
    depends_on=("jacobian_lemma",),
)
