"""The offset lemma (docs/theory.md §3.1): which patch offsets a kernel's taps reach."""

from __future__ import annotations

from vitconv.proofs.evidence import smt_evidence
from vitconv.proofs.theorem import CheckContext, Evidence, Obligation, Theorem
from vitconv.theory import offset_lemma as lemma
from vitconv.theory.smt import prove_offset_lemma


def _certificates(ctx: CheckContext) -> Evidence:
    proofs = lemma.all_proofs()
    checks = [(p, s) for p in proofs for s in p.check()]
    failed = [f"{p.name}: step {s.step.name} ({s.reason}, residual {s.residual})"
              for p, s in checks if not s.ok]
    return Evidence(not failed, f"{len(proofs)} proofs, {len(checks)} certified steps",
                    examples=len(checks), counterexample=failed[0] if failed else None,
                    detail="each step: claim minus a non-negative combination of facts "
                           "expands to a constant >= 0 (or, by contradiction, to < 0)")


def _smt(ctx: CheckContext) -> Evidence:
    return smt_evidence(prove_offset_lemma(), "on the printed formulas")


def _brute_force(ctx: CheckContext) -> Evidence:
    sizes = dict(max_patch=4, max_span=8, max_dilation=3) if ctx.quick else {}
    r = lemma.brute_force(**sizes)
    return Evidence(
        r.mismatch is None,
        f"{r.cases} spans (all P, stride | P, a, b, u, t) + {r.dilated_cases} dilated kernels",
        examples=r.cases + r.dilated_cases, counterexample=r.mismatch,
        detail=f"{r.dilated_strict} dilated kernels reach a strict subset of the interval")


THEOREM = Theorem(
    id="offset_lemma",
    kind="lemma",
    title="Offset lemma: the patch offsets a kernel reaches",
    section="3.1",
    hypotheses=(
        r"$P = \sigma Q$ for integers $\sigma \ge 1$ (the stride) and $Q \ge 1$ "
        r"(output pixels per patch along the axis).",
        r"The kernel's taps, relative to $\sigma$ times an output pixel, span $[-a, b]$ with "
        r"integers $a, b \ge 0$; for padding $p$, dilation $d$ and $K$ taps, "
        r"$a = p$ and $b = d(K-1) - p$.",
    ),
    statement=(
        r"An output pixel at in-patch position $u$ ($0 \le u < Q$) reading tap $t$ "
        r"($-a \le t \le b$) reads the patch at offset $m = \lfloor (u\sigma + t)/P \rfloor$. "
        r"The offsets so reached are exactly the integers from $<<lower>>$ to $<<upper>>$, "
        r"$<<count>>$ of them; for $\sigma = 1$ this is $<<count1>>$. In particular, for "
        r"$\sigma = 1$ and $1 \le a, b \le P$ they are $\{-1, 0, 1\}$: 9 offsets in two "
        r"dimensions. A dilated kernel (taps $t = kd - a$, $0 \le k < K$) reaches a subset of "
        r"them; with $\sigma = 1$ and dilation $d \le P$ it reaches all of them, so it too "
        r"needs $<<count1>>$ heads per axis, while with $d > P$ it can skip offsets."
    ),
    proof=(
        r"\emph{Range.} With $x = u\sigma + t$, the hypotheses give $-a \le x$ and "
        r"$x \le (Q-1)\sigma + b = P - \sigma + b$; since $\lfloor\cdot/P\rfloor$ is "
        r"monotone, $\lfloor -a/P\rfloor \le m \le \lfloor (P-\sigma+b)/P\rfloor$. "
        r"In certificate form: if $m < \lfloor -a/P \rfloor =: \ell$ then "
        r"$P(m-\ell+1) \le 0$, while $mP + P - 1 \ge x \ge -a \ge \ell P$ gives "
        r"$P(m - \ell + 1) \ge 1$, a contradiction (and symmetrically for the upper end). "
        r"\emph{Surjectivity.} For each $m$ in the interval an explicit $(u, t)$ reaches it: "
        r"$u = 0$ and $t = \max(mP, -a)$ when $m \le -1$; $u = t = 0$ when $m = 0$; "
        r"$u = Q - 1$ and $t = \min(b, mP + \sigma - 1)$ when $m \ge 1$. Each case is a "
        r"short list of inequalities, each certified. "
        r"\emph{Count.} For $\sigma = 1$, $\lfloor (P-1+b)/P \rfloor = \lceil b/P \rceil$ "
        r"(two certified inequalities) and $-\lfloor -a/P \rfloor = \lceil a/P \rceil$. "
        r"A dilated kernel's taps are a subset of $[-a, b]$, so its offsets are a subset. "
        r"With $\sigma = 1$ and $d \le P$, for each $m$ in the interval take the pixel "
        r"$x = \max(mP, -a)$, the tap $k = \min(\lfloor (x+a)/d \rfloor, K - 1)$ and "
        r"$u = x + a - kd$: then $0 \le u \le \max(d - 1, x - b) \le P - 1$ and "
        r"$\lfloor (u + kd - a)/P \rfloor = \lfloor x/P \rfloor = m$; with $d > P$ the "
        r"taps can skip a whole patch (e.g. $K = 3$, $d = 5$, $P = 2$). Every check above "
        r"evaluates the printed formulas themselves: the certificates derive their floor and "
        r"ceiling facts from them, z3 receives their translation, the brute force evaluates "
        r"them exactly."
    ),
    formulas=lemma.FORMULAS,
    obligations=(
        Obligation("offset_lemma.certificates",
                   "every step certified by sympy (range, 5 surjectivity cases, count)",
                   "certificate", _certificates, scope="all"),
        Obligation("offset_lemma.smt",
                   "range, surjectivity, count and dilation <= P for all integers (z3)",
                   "smt", _smt, scope="all"),
        Obligation("offset_lemma.brute_force",
                   "all small P, strides, spans; head plans of dilated kernels",
                   "exhaustive", _brute_force),
    ),
    proved_by=("certificates", "smt"),
    family="small P, strides, spans and dilated kernels",
)
