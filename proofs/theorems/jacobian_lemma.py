"""The Jacobian lemma (docs/theory.md §3.3): at zero input an MHSA is linear with blocks
``sum_h A^h(0) W_V^h W_O^h``; and why positions must stay out of the values."""

from __future__ import annotations

import torch

from vitconv.numeric.evidence.jacobian import check_lemma, random_mhsa
from vitconv.proofs.theorem import CheckContext, Evidence, Obligation, Theorem
from vitconv.theory.jacobian import LEMMA_STATEMENT, prove_jacobian_lemma, value_side_counterexample

# (grid, d_in, d_out, heads, value width, key width): several sizes, content-dependent
MHSA_SIZES = (((2, 2), 2, 2, 2, 2, 2), ((3, 3), 4, 3, 3, 2, 2), ((3, 4), 3, 5, 4, 3, 4),
              ((4, 4), 8, 8, 6, 4, 8), ((5, 5), 6, 4, 9, 3, 4))


def _symbolic(ctx: CheckContext) -> Evidence:
    shapes = [(2, 2, 2)] if ctx.quick else [(2, 2, 2), (3, 1, 2)]
    entries = 0
    for tokens, d_in, heads in shapes:
        r = prove_jacobian_lemma(tokens, d_in, heads)
        entries += r.entries
        if not r.proved:
            return Evidence(False, f"{entries} Jacobian entries", examples=entries,
                            counterexample=r.detail)
    shapes_text = ", ".join(f"{t} tokens/{d} features/{h} heads" for t, d, h in shapes)
    return Evidence(True, f"{entries} Jacobian entries ({shapes_text}), all symbolic",
                    examples=entries, detail="sympy.diff at X = 0 minus the lemma simplifies to 0")


def _autograd(ctx: CheckContext) -> Evidence:
    gen = torch.Generator().manual_seed(ctx.seed)
    reps = 1 if ctx.quick else 4
    worst, checks, failure = 0.0, 0, None
    for grid, d_in, d_out, heads, dv, dk in MHSA_SIZES:
        for dtype in (torch.float64, torch.float32):
            for _ in range(reps):
                att = random_mhsa(d_in, d_out, heads, dv, dk, grid, gen, dtype).to(ctx.device)
                for query in {(0, 0), (grid[0] - 1, grid[1] - 1), (grid[0] // 2, grid[1] // 2)}:
                    c = check_lemma(att, grid, query)
                    checks += 1
                    worst = max(worst, c.ratio)
                    if not c.passed and failure is None:
                        failure = f"grid {grid}, {heads} heads, {dtype}, query {query}: {c}"
    return Evidence(failure is None, f"{checks} (MHSA, query) pairs, {len(MHSA_SIZES)} sizes, "
                    "float64 and float32", examples=checks, worst=worst, bound=1.0,
                    counterexample=failure,
                    detail="worst = max |autograd - lemma| / first-order rounding bound")


def _value_side(ctx: CheckContext) -> Evidence:
    c = value_side_counterexample()
    nonzero = any(v != 0 for v in c.difference)
    return Evidence(nonzero, "1 explicit rational instance (Shaw et al. value embeddings)",
                    examples=1, detail=f"d y_0/d x_1 - lemma = {c.difference[0]}",
                    counterexample=None if nonzero else "the difference vanished",
                    data={"difference": str(c.difference[0]), "jacobian": str(c.jacobian[0]),
                          "lemma": str(c.lemma_value[0])})


THEOREM = Theorem(
    id="jacobian_lemma",
    kind="lemma",
    title="Jacobian lemma: at zero input attention is linear in the values",
    section="3.3",
    hypotheses=(
        r"An MHSA of the standard form: $y_q = \sum_h \sum_k A^h_{qk}(X)(x_k W_V^h + b_V^h)"
        r"W_O^h + b_O$ with $A^h_{q\cdot} = \mathrm{softmax}_k(s^h_{qk})$ and any "
        r"differentiable scores $s^h_{qk}(X)$.",
        r"Positions enter the scores only (e.g.\ the relative bias $B^h[k-q]$), never the "
        r"values.",
    ),
    statement=r"$<<lemma>>$ for every query $q$ and key $k$.",
    formulas={"lemma": LEMMA_STATEMENT},
    proof=(
        r"By the product rule, $\partial y_q/\partial x_k = \sum_h A^h_{qk} W_V^h W_O^h + "
        r"\sum_h \sum_{k'} (\partial A^h_{qk'}/\partial x_k)(x_{k'} W_V^h + b_V^h) W_O^h$. At "
        r"$X = 0$ every value equals $b_V^h$, so the second sum is "
        r"$\big(\partial/\partial x_k \sum_{k'} A^h_{qk'}\big) b_V^h W_O^h = "
        r"(\partial 1/\partial x_k)\, b_V^h W_O^h = 0$. The hypothesis on positions is "
        r"necessary: with value-side relative embeddings $r_{k-q}$ (Shaw et al.) the second "
        r"sum becomes $\sum_{k'} (\partial A_{qk'}/\partial x_k) r_{k'-q} W_O$, which does not "
        r"vanish when the $r$ differ; the obligation below exhibits an exact instance."
    ),
    obligations=(
        Obligation("jacobian_lemma.symbolic", "sympy differentiation of a symbolic MHSA",
                   "symbolic", _symbolic),
        Obligation("jacobian_lemma.autograd",
                   "autograd Jacobian of random content-dependent MHSAs", "numeric", _autograd),
        Obligation("jacobian_lemma.value_side_counterexample",
                   "the lemma fails with value-side relative embeddings", "symbolic",
                   _value_side),
    ),
    family="small symbolic MHSAs and random MHSAs of 5 sizes",
)
