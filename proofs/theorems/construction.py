"""The construction theorem (docs/theory.md §3.2): any convolution is an MHSA on patch tokens."""

from __future__ import annotations

import random

import torch
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from torch import nn

from vitconv.numeric.conv_attention import as_attention
from vitconv.numeric.evidence.checks import (
    Comparison,
    compare_case,
    exact_construction_mismatch,
    random_conv,
    strict_float32,
)
from vitconv.numeric.evidence.strategies import conv_cases
from vitconv.proofs.evidence import smt_evidence
from vitconv.proofs.theorem import CheckContext, Evidence, Obligation, Theorem
from vitconv.theory import construction
from vitconv.theory.cases import NAMED_CASES, ConvCase, identity_grid
from vitconv.theory.geometry import AxisGeometry, ConvGeometry
from vitconv.theory.offset_lemma import COUNT_STRIDE_ONE
from vitconv.theory.smt import prove_index_arithmetic


def _index_arithmetic(ctx: CheckContext) -> Evidence:
    return smt_evidence(prove_index_arithmetic(), "the index arithmetic of every tap")


def _placements(ctx: CheckContext) -> Evidence:
    """The code's placements (``vitconv.theory.geometry``) against the arithmetic z3 proves, for
    every small axis: each (output pixel, tap) reads offset ``floor(x/P)`` at position
    ``x - P floor(x/P)`` with ``x = u*stride + tap``, exactly once."""
    top = 8 if ctx.quick else 16
    axes = 0
    for P in range(1, top + 1):
        for stride in (s for s in range(1, P + 1) if P % s == 0):
            for K in range(1, 2 * P + 4):
                for d in (1, 2, 3):
                    for pad in range(0, d * (K - 1) + 1, max(1, (d * (K - 1)) // 3)):
                        axis = AxisGeometry(K, P, d, stride, pad, pad)
                        axes += 1
                        seen = set()
                        for pl in axis.placements():
                            x = pl.out_pos * stride + axis.taps[pl.tap]
                            if (pl.offset, pl.in_pos) != (x // P, x - P * (x // P)) \
                                    or (pl.out_pos, pl.tap) in seen:
                                return Evidence(False, f"{axes} axes", examples=axes,
                                                counterexample=f"{axis}: {pl}")
                            seen.add((pl.out_pos, pl.tap))
                        if len(seen) != axis.out_patch * K:
                            return Evidence(False, f"{axes} axes", examples=axes,
                                            counterexample=f"{axis}: a tap is missing")
    return Evidence(True, f"{axes} axes (P <= {top}, every stride | P, K <= 2P+3, "
                    "dilation <= 3)", examples=axes,
                    detail="the placements the code builds blocks from are the z3-proved "
                           "arithmetic, each (output pixel, tap) once")


def _exact_weights(ctx: CheckContext) -> Evidence:
    cases = identity_grid(quick=ctx.quick)
    gen = torch.Generator().manual_seed(ctx.seed)
    checked = 0
    for case in cases:
        for dtype in (torch.float64, torch.float32):
            conv = random_conv(case, gen, dtype)
            mismatch = exact_construction_mismatch(conv, as_attention(conv, case.patch_size))
            checked += 1
            if mismatch:
                return Evidence(False, f"{checked} conversions", examples=checked,
                                counterexample=f"{case} in {dtype}: {mismatch}")
    return Evidence(True, f"{checked} conversions ({len(cases)} cases x 2 dtypes), exact",
                    examples=checked,
                    detail="in rationals: W_V^h W_O^h == M_delta_h (blocks built by theory "
                           "from the kernel), masks keep delta_h alone, W_Q = W_K = 0, "
                           "b_O = beta")


def definition_mismatch(case: ConvCase, seed: int) -> str | None:
    """``construction.conv_by_definition`` (the convolution the identity is proved against)
    against PyTorch's ``F.conv2d`` at small random integers, where float64 is exact: the
    symbolic definition must be PyTorch's convolution, padding modes included."""
    rng = random.Random(seed)
    geom = case.geometry()
    cin_g = geom.in_channels // geom.groups
    H, W = case.image
    x = [[[rng.randint(-4, 4) for _ in range(W)] for _ in range(H)]
         for _ in range(geom.in_channels)]
    w = {(o, c, s, t): rng.randint(-4, 4) for o in range(geom.out_channels)
         for c in range(cin_g) for s in range(geom.rows.kernel_size)
         for t in range(geom.cols.kernel_size)}
    bias = [rng.randint(-4, 4) for _ in range(geom.out_channels)]
    ours = torch.tensor(construction.conv_by_definition(x, w, bias, geom, case.padding_mode),
                        dtype=torch.float64)
    conv = nn.Conv2d(**case.conv_kwargs()).double()
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[[[w[(o, c, s, t)] for t in range(geom.cols.kernel_size)]
                                          for s in range(geom.rows.kernel_size)]
                                         for c in range(cin_g)]
                                        for o in range(geom.out_channels)]))
        if conv.bias is not None:
            conv.bias.copy_(torch.tensor(bias, dtype=torch.float64))
        else:
            ours = ours - torch.tensor(bias, dtype=torch.float64)[:, None, None]
        theirs = conv(torch.tensor([x], dtype=torch.float64))[0]
    if ours.shape != theirs.shape or not torch.equal(ours, theirs):
        return f"{case}: the symbolic definition differs from F.conv2d at integer inputs"
    return None


def _symbolic_identity(ctx: CheckContext) -> Evidence:
    cases = identity_grid(quick=ctx.quick)
    outputs = terms = 0
    for i, case in enumerate(cases):
        r = construction.prove_identity(case.geometry(), *case.image, case.padding_mode)
        outputs, terms = outputs + r.outputs, terms + r.terms
        mismatch = None if r.proved else f"{case}: {r.mismatch}"
        mismatch = mismatch or definition_mismatch(case, ctx.seed + i)
        if mismatch:
            return Evidence(False, f"{len(cases)} instances", examples=len(cases),
                            counterexample=mismatch)
    return Evidence(True, f"{len(cases)} instances, {outputs} output pixels, {terms} monomials",
                    examples=len(cases),
                    detail="sympy.expand(conv - attention form) == 0 at every output pixel; "
                           "the symbolic conv equals F.conv2d exactly at integer inputs")


def _comparison_evidence(results: list[Comparison], size: str, failure: str | None) -> Evidence:
    worst = max((r.worst_ratio for r in results), default=0.0)
    by_dtype = {}
    for r in results:
        by_dtype[r.dtype] = max(by_dtype.get(r.dtype, 0.0), r.max_error_vs_reference)
    return Evidence(
        failure is None and all(r.passed for r in results), size, examples=len(results),
        worst=worst, bound=1.0, counterexample=failure,
        detail="worst = max error / stated rounding bound; max abs error vs float64 "
               "reference: " + ", ".join(f"{k} {v:.2e}" for k, v in sorted(by_dtype.items())),
        data={"max_error_vs_reference": by_dtype})


def _named_cases(ctx: CheckContext) -> Evidence:
    results = []
    with strict_float32():
        for case in NAMED_CASES:
            for dtype in (torch.float64, torch.float32):
                results.append(compare_case(case, dtype=dtype, seed=ctx.seed, device=ctx.device))
    failed = [r for r in results if not r.passed]
    heads = [(r.case.name, r.heads, r.total_value_dim) for r in results if r.dtype == "float64"]
    evidence = _comparison_evidence(
        results, f"{len(NAMED_CASES)} named cases x 2 dtypes on {ctx.device}",
        f"{failed[0].case} in {failed[0].dtype}: ratio {failed[0].worst_ratio:.3g}"
        if failed else None)
    return Evidence(**{**evidence.__dict__, "data": {**evidence.data, "heads": heads}})


def _property(ctx: CheckContext) -> Evidence:
    results: list[Comparison] = []
    failures: list[Comparison] = []

    @settings(max_examples=25 if ctx.quick else 150, database=None, deadline=None,
              suppress_health_check=[HealthCheck.too_slow], print_blob=False)
    @seed(ctx.seed)
    @given(case=conv_cases(), dtype=st.sampled_from([torch.float64, torch.float32]),
           batch=st.integers(1, 2), weight_seed=st.integers(0, 2**16))
    def equal_to_conv(case, dtype, batch, weight_seed):
        r = compare_case(case, dtype=dtype, batch=batch, seed=weight_seed, device=ctx.device)
        results.append(r)
        if not r.passed:
            failures.append(r)  # hypothesis replays the minimal failing example last
            raise AssertionError(f"ratio {r.worst_ratio}")

    failure = None
    try:
        with strict_float32():
            equal_to_conv()
    except Exception as err:
        failure = (f"{failures[-1].case} in {failures[-1].dtype}: ratio "
                   f"{failures[-1].worst_ratio:.3g}") if failures else repr(err)
    return _comparison_evidence(results, f"{len(results)} hypothesis examples on {ctx.device}",
                                failure)


def _example_blocks() -> dict[str, object]:
    geom = ConvGeometry.from_conv_params(kernel_size=3, patch_size=2, padding=1)
    w, _ = construction.symbolic_kernel(geom)
    blocks = construction.symbolic_blocks(geom, w)
    return {"M_centre": blocks[(0, 0)], "M_corner": blocks[(1, 1)]}


THEOREM = Theorem(
    id="construction",
    kind="theorem",
    title="Construction: any convolution is multi-head self-attention on patch tokens",
    section="3.2",
    hypotheses=(
        r"A 2-D convolution (cross-correlation, as \texttt{torch.nn.functional.conv2d}) with "
        r"any numbers of channels, groups, kernel size, dilation, bias, padding and padding "
        r"mode, and a stride $\sigma$ dividing the patch size $P$.",
        r"Tokens are the flattened $P \times P$ patches of the image (row-major pixels, "
        r"channel fastest); the image is framed by tokens of padding.",
        r"Multi-head self-attention of the standard form with a relative-position bias table "
        r"$B^h$ in the scores.",
    ),
    statement=(
        r"Let $\mathcal{D}$ be the set of patch offsets that the kernel's taps reach (the "
        r"offset lemma, per axis; the product of the two axes in 2-D). The attention layer "
        r"with one head per $\delta_h \in \mathcal{D}$, $W_Q^h = W_K^h = 0$, "
        r"$B^h[\delta_h] = 0$ and $B^h[\delta] = -\infty$ for $\delta \ne \delta_h$, "
        r"$W_V^h W_O^h = M_{\delta_h}$ and $b_O = \beta$ computes the convolution exactly: "
        r"$y_q = \sum_{\delta \in \mathcal{D}} x_{q+\delta} M_\delta + \beta$ at every output "
        r"token. Head $h$ needs value width $\operatorname{rank} M_{\delta_h}$ at least; the "
        r"exact split used has width $\min(\#\text{nonzero rows}, \#\text{nonzero "
        r"columns})$ of $M_{\delta_h}$, at least the rank (often equal to it). With stride 1 "
        r"and dilation $d \le P$ the number of heads is the product over both axes of "
        r"$<<heads_axis>>$: 9 when $r \le P$, $K^2$ for pixel tokens ($P = 1$, any "
        r"dilation); with $d > P$ it is the number of offsets the taps reach, which can be "
        r"fewer (Lemma~\ref{thm:offset_lemma})."
    ),
    proof=(
        r"Along one axis, output pixel $i = AQ + u$ of output patch $A$ reads input pixel "
        r"$i\sigma + t$ for each tap $t$, which is pixel $u' = (u\sigma + t) \bmod P$ of "
        r"input patch $A + \delta$, $\delta = \lfloor (u\sigma + t)/P \rfloor$. Hence the "
        r"output token of patch $q$ is a linear function of the input tokens $x_{q+\delta}$, "
        r"$\delta \in \mathcal{D}$, with block $M_\delta$ whose entry at "
        r"$((u', v', c), (u, v, o))$ is the single weight $w[o, c, s, t]$ of the tap that "
        r"lands there (zero across groups), plus the bias: "
        r"$y_q = \sum_\delta x_{q+\delta} M_\delta + \beta$. Padding is the frame of tokens "
        r"filled as the convolution pads (zeros, or its own mode). With content-free scores "
        r"and the mask, $A^h_{q,k} = 1$ if $k = q + \delta_h$ and $0$ otherwise (the target "
        r"key always exists in the frame, so no row is fully masked); then head $h$ "
        r"contributes $x_{q+\delta_h} W_V^h W_O^h = x_{q+\delta_h} M_{\delta_h}$. Exactly: "
        r"$W_V^h$ holds the nonzero columns of $M_{\delta_h}$ and $W_O^h$ selects them back "
        r"(or $W_V^h$ selects the nonzero rows and $W_O^h$ holds them), so every entry of "
        r"$W_V^h W_O^h$ is one kernel weight times 1. The index arithmetic is proved for all "
        r"integers by z3, the polynomial identity on the instances below. For example, "
        r"a $3\times 3$ kernel on $2\times 2$ patches has the centre and corner blocks "
        r"\[ M_{(0,0)} = <<M_centre>>, \qquad M_{(1,1)} = <<M_corner>> \] "
        r"(rows: input pixels, columns: output pixels)."
    ),
    formulas={"heads_axis": COUNT_STRIDE_ONE, **_example_blocks()},
    obligations=(
        Obligation("construction.index_arithmetic",
                   "the pixel head delta reads is the pixel the conv reads, for all integers",
                   "smt", _index_arithmetic, scope="all"),
        Obligation("construction.placements",
                   "the code's tap placements are the proved arithmetic, for every small axis",
                   "exhaustive", _placements),
        Obligation("construction.exact_weights",
                   "the layer's weights are the prescribed ones, exactly in rationals",
                   "symbolic", _exact_weights),
        Obligation("construction.symbolic_identity",
                   "sum_delta x M_delta + beta == conv, exact polynomial identity",
                   "symbolic", _symbolic_identity),
        Obligation("construction.named_cases",
                   "named edge cases vs F.conv2d and float64 reference, within error bounds",
                   "numeric", _named_cases),
        Obligation("construction.property",
                   "random convolutions (hypothesis) vs F.conv2d and float64 reference",
                   "property", _property),
    ),
    proved_by=("index_arithmetic",),
    depends_on=("offset_lemma",),
    family="named and random convolutions",
)
