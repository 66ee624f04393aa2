"""The unified generic-rank claim of DESIGN 3.3, tested: true with stride and dilation 1,
refuted beyond, with a proved upper bound in general."""

from __future__ import annotations

from functools import cache

from proofs.theorem import CheckContext, Evidence, Obligation, Theorem
from proofs.theorems.lower_bound import rho_table, table_data
from theory.bounds import RhoRow, rank_upper_bound, rho_row, symbolic_generic_rank
from theory.geometry import ConvGeometry


@cache
def _beyond(quick: bool, seed: int) -> tuple[RhoRow, ...]:
    """Dilated and strided shapes, where the unified formula is put to the test."""
    patches = (2, 3) if quick else (2, 3, 4)
    kernels = (2, 3) if quick else (2, 3, 5)
    rows = []
    for P in patches:
        for K in kernels:
            for d in (2, 3):
                for ch in ((1, 1), (1, 2)):
                    rows.append(rho_row(K, P, *ch, dilation=d, seed=seed))
            if P % 2 == 0:
                rows.append(rho_row(K, P, 1, 2, stride=2, seed=seed))
    return tuple(rows)


def _equality(ctx: CheckContext) -> Evidence:
    rows = rho_table(ctx.quick, ctx.seed)
    bad = [r for r in rows if r.rho != r.issue_formula or not r.certified]
    return Evidence(not bad, f"{len(rows)} shapes with stride and dilation 1",
                    examples=len(rows), counterexample=str(bad[0]) if bad else None,
                    detail="rho = min(#offsets, (2P-1)^2 C_in C_out) at every shape, each "
                           "certified by a nonzero minor meeting the upper bound")


def _upper_bound(ctx: CheckContext) -> Evidence:
    rows = rho_table(ctx.quick, ctx.seed) + _beyond(ctx.quick, ctx.seed)
    bad = [r for r in rows if r.rho > r.upper or not r.certificate_checked]
    fails = [r for r in rows if r.rho != r.issue_formula]
    below = [r for r in rows if r.rho < r.upper]
    return Evidence(
        not bad, f"{len(rows)} shapes incl. dilation 2-3 and stride 2", examples=len(rows),
        counterexample=str(bad[0]) if bad else None,
        detail=f"rho <= upper bound everywhere; the unified formula fails at {len(fails)} "
               f"dilated/strided shapes; {len(below)} stay strictly below the upper bound",
        data={"beyond": table_data(_beyond(ctx.quick, ctx.seed))})


# Exact counterexamples: generic rank computed over the field of rational functions.
COUNTEREXAMPLES = (
    ("3x3, dilation 2, 2x2 patches, 1 channel", dict(kernel_size=3, patch_size=2,
                                                   padding="same", dilation=2)),
    ("2x2, dilation 2, 2x2 patches, 1 -> 2 channels", dict(kernel_size=2, patch_size=2,
                                                         padding="same", dilation=2,
                                                         out_channels=2)),
)


def _counterexamples(ctx: CheckContext) -> Evidence:
    found = []
    for name, params in COUNTEREXAMPLES:
        geom = ConvGeometry.from_conv_params(**params)
        rho = symbolic_generic_rank(geom)
        formula = min(geom.num_heads, (2 * geom.patch_size - 1) ** 2
                      * geom.in_channels * geom.out_channels)
        found.append({"shape": name, "generic_rho": rho, "unified_formula": formula,
                      "upper_bound": rank_upper_bound(geom), "offsets": geom.num_heads})
    ok = found[0]["generic_rho"] < found[0]["unified_formula"] and \
        found[1]["generic_rho"] < found[1]["upper_bound"]
    return Evidence(ok, f"{len(found)} shapes, generic rank over Q(w) exactly",
                    examples=len(found),
                    detail="; ".join(f"{f['shape']}: rho {f['generic_rho']} vs formula "
                                     f"{f['unified_formula']}, upper bound {f['upper_bound']}"
                                     for f in found),
                    data={"counterexamples": found})


THEOREM = Theorem(
    id="unified_rank",
    kind="proposition",
    title="The unified generic rank: proved bound, tested formula, counterexamples",
    section="3.3",
    hypotheses=(
        r"A convolution with $C_{in}$, $C_{out}$ channels and groups $g$, stride $\sigma$ "
        r"dividing $P$; $E$ the set of differences $e = u' - \sigma u$ at which some tap sits "
        r"(per axis); $\rho$ the generic rank of the matrix with rows $\mathrm{vec}(M_\delta)$.",
    ),
    statement=(
        r"(i) $\rho \le \min(\#\text{offsets},\ |E_h||E_w| C_{in} C_{out}/g)$ always. "
        r"(ii) With stride and dilation 1, $\rho = \min(\#\text{offsets},\ (2P-1)^2 C_{in} "
        r"C_{out})$ at every shape of the table (this contains the paper's 9 and the pixel "
        r"$\min(K^2, C_{in}C_{out})$); we do not claim it for all shapes. (iii) The formula is "
        r"false in general: a $3\times3$ kernel dilated by 2 on $2\times2$ patches has "
        r"$\rho = 1$, not 9; and (i) need not be attained: a $2\times2$ kernel dilated by 2 "
        r"with $1 \to 2$ channels has $\rho = 7 < 8$."
    ),
    proof=(
        r"(i) The entry of $M_\delta$ at input pixel $u'$ and output pixel $u$ is the tap at "
        r"position $\delta P + u' - \sigma u$, so it depends on $\delta$ and "
        r"$e = u' - \sigma u$ only: columns with equal $(e_h, e_w, c, o)$ are equal, and a "
        r"column whose $e$ no tap realises is zero. The rank is at most the number of rows "
        r"and of distinct nonzero columns. (ii) Exact ranks at random integer kernels, each "
        r"meeting the bound (i), which certifies the generic value. (iii) The generic rank is "
        r"computed exactly over the field of rational functions in the kernel entries "
        r"(sympy DomainMatrix over $\mathbb{Z}[w]$). With dilation 2 and $P = 2$ every tap "
        r"position is even, so $u' - u = 0$ and each $M_\delta$ is a multiple of the "
        r"identity: the span has dimension 1."
    ),
    obligations=(
        Obligation("unified_rank.upper_bound", "rho <= min(#offsets, |E|^2 C_in C_out / g)",
                   "certificate", _upper_bound),
        Obligation("unified_rank.stride_dilation_one",
                   "rho = min(#offsets, (2P-1)^2 C_in C_out) with stride and dilation 1",
                   "certificate", _equality),
        Obligation("unified_rank.counterexamples",
                   "the formula fails with dilation; the bound can be strict", "symbolic",
                   _counterexamples),
    ),
)
