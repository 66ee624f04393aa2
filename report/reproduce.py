"""Results of ``vitconv reproduce``: tables with intervals, a figure, throughput and
time-to-accuracy ratios, the alpha ablation; as Markdown, JSON and an ``\\input``-able LaTeX
section, all under the output folder.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from vitconv.numeric.files import atomic_write_text
from vitconv.numeric.train.experiment import ExperimentConfig
from vitconv.numeric.train.loop import RunResult, RunSpec
from vitconv.numeric.train.models import ARMS
from vitconv.numeric.train.provenance import code_digest
from vitconv.numeric.train.stats import (
    Interval,
    detectable_difference,
    holm,
    mean_interval,
    paired_difference,
    paired_p_value,
    verdict,
)
from vitconv.report.latex import escape

LABELS = {"two_phase": "two-phase (conv, then attention)",
          "phase2_random": "attention from random init",
          "phase1_only": "convolutional mixers throughout", "vit": "conventional ViT",
          "convit": "ConViT (gated positional attention)"}
CLAIM = "two-phase training helps Vision Transformers when data is scarce"
SCARCE = 0.1  # sizes up to this fraction of the training pool count as scarce data
SCHEMA = "vitconv.reproduce/1"


def _main(results: list[RunResult], alpha_default: float) -> dict:
    """``(arm, size) -> {seed: result}`` for the main grid (ablation runs excluded)."""
    table: dict = defaultdict(dict)
    for r in results:
        if r.spec["alpha"] is None and not r.diverged:
            table[(r.spec["arm"], r.spec["size"])][r.spec["seed"]] = r
    return dict(table)  # a plain dict: looking up a missing cell must not create it


def summarise(results: list[RunResult], alpha_default: float, pool: int | None = None
              ) -> dict:
    """Accuracy intervals, paired differences with the detectable difference, throughput,
    time-to-accuracy, the ablation, and the claim's status (:func:`claim_status`);
    ``pool``: the number of training images the sizes are drawn from."""
    table = _main(results, alpha_default)
    sizes = sorted({size for _, size in table})
    arms = [a for a in ARMS if any((a, n) in table for n in sizes)]
    acc = {a: {n: mean_interval([r.accuracy for r in table[(a, n)].values()])
               for n in sizes if (a, n) in table} for a in arms}
    diffs: dict = {}
    detectable: dict = {}
    p_values: dict = {}
    for other in arms:
        if other == "two_phase":
            continue
        diffs[other], detectable[other], p_values[other] = {}, {}, {}
        for n in sizes:
            if ("two_phase", n) in table and (other, n) in table:
                seeds = sorted(set(table[("two_phase", n)]) & set(table[(other, n)]))
                if not seeds:  # every pair lost to divergence
                    continue
                a = [table[("two_phase", n)][s].accuracy for s in seeds]
                b = [table[(other, n)][s].accuracy for s in seeds]
                diffs[other][n] = paired_difference(a, b)
                paired = [x - y for x, y in zip(a, b, strict=True)]
                detectable[other][n] = detectable_difference(paired)
                p_values[other][n] = paired_p_value(paired)
    throughput = {a: sum(r.images_per_second for n in sizes
                         for r in table.get((a, n), {}).values())
                  / sum(len(table.get((a, n), {})) for n in sizes) for a in arms}
    tta = _time_to_accuracy(table, sizes)
    ablation: dict = defaultdict(list)
    for r in results:
        if r.spec["arm"] == "two_phase" and not r.diverged:
            a = r.spec["alpha"] if r.spec["alpha"] is not None else alpha_default
            ablation[(a, r.spec["size"])].append(r)
    ablation_sizes = {size for a, size in ablation if a != alpha_default}
    gap = {a: {"after_conversion": mean_interval([r.after_conversion for r in rs]),
               "before_conversion": mean_interval([r.before_conversion for r in rs]),
               "final": mean_interval([r.accuracy for r in rs]), "size": size}
           for (a, size), rs in sorted(ablation.items()) if size in ablation_sizes}
    summary = {"sizes": sizes, "arms": arms, "accuracy": acc, "differences": diffs,
               "detectable": detectable, "p_values": p_values, "throughput": throughput,
               "time_to_accuracy": tta, "alpha": gap,
               "diverged": sorted((RunSpec(**r.spec) for r in results if r.diverged),
                                  key=lambda spec: spec.id)}
    summary["claim"] = claim_status(summary, pool)
    return summary


def _points(x: float) -> str:
    return f"{100 * x:+.1f}"


def _points_interval(iv: Interval) -> str:
    if iv.n < 2:
        return f"{_points(iv.mean)} (one seed)"
    return f"{_points(iv.mean)} [{_points(iv.low)}, {_points(iv.high)}]"


def _share(n: int, pool: int | None) -> str:
    return f" ({100 * n / pool:.3g}% of the training set)" if pool else ""


def _direction(iv: Interval) -> str:
    """An interval of two-phase minus another arm, in words that claim nothing."""
    if iv.n < 2:
        return "one seed, no interval"
    return {"supported": "two-phase ahead", "refuted": "two-phase behind",
            "undecided": "no clear difference"}[verdict(iv)]


def _interval_text(iv: Interval) -> str:
    text = f"{_points(iv.mean)} points"
    return text + (f", 95% interval [{_points(iv.low)}, {_points(iv.high)}] over {iv.n} seeds"
                   if iv.n >= 2 else " (one seed: no interval)")


def is_scarce(n: int, pool: int | None) -> bool:
    """At most ``SCARCE`` of the pool, rounded as the grid rounds its sizes (all sizes
    count when the pool is unknown)."""
    return not pool or n <= round(SCARCE * pool)


def claim_status(summary: dict, pool: int | None) -> dict:
    """The claim's status on these data and one sentence per size (docs/theory.md §5).

    Per scarce size (``is_scarce``), against the conventional ViT (the claim's subject):
    *supported* when the paired 95% interval of two-phase minus ViT lies above 0,
    *refuted* when it lies below 0, otherwise *undecided at this power* (with the
    difference the design detects with 80% power). Sizes with plentiful data are a
    reference and get directions, not verdicts. Overall, with Holm's correction over the
    scarce sizes (family-wise 5%): *verified on data* when Holm rejects at one or more,
    all with two-phase ahead; *refuted* when it rejects only with two-phase behind;
    otherwise *undecided*; *not tested* without a ViT arm. A diverged two-phase or ViT
    run at a scarce size makes the status *undecided* (a failure cannot be left out in
    favour of either arm). ConViT, the best-known alternative, gets a direction per size
    beside it, without an overall status.
    """
    vit, convit = summary["differences"].get("vit", {}), summary["differences"].get("convit", {})
    diverged = [spec for spec in summary["diverged"] if spec.alpha is None]  # main grid
    sentences, scarce = [], []
    for n in summary["sizes"]:
        if n not in vit:
            continue
        d, mde = vit[n], summary["detectable"]["vit"][n]
        if is_scarce(n, pool):
            scarce.append(n)
            word = {"supported": "supported", "refuted": "refuted",
                    "undecided": "undecided at this power"}[verdict(d)]
            text = f"n = {n}{_share(n, pool)}: {word}. "
        else:
            text = f"n = {n}{_share(n, pool)}, data not scarce (a reference): {_direction(d)}. "
        text += "Two-phase minus the conventional ViT: " + _interval_text(d)
        if d.n >= 2 and math.isfinite(mde):
            text += f"; the design detects {100 * mde:.1f} points with 80% power"
        if n in convit:
            text += (f". Against ConViT: {_interval_text(convit[n])}, "
                     f"{_direction(convit[n])}")
        lost = [spec.id for spec in diverged if spec.size == n]
        if lost:
            text += f". Diverged and left out: {', '.join(lost)}"
        sentences.append(text + ".")
    rejected = holm({n: summary["p_values"]["vit"][n] for n in scarce})
    signs = {vit[n].mean > 0 for n in rejected}
    failed = [spec.id for spec in diverged
              if spec.arm in ("two_phase", "vit") and is_scarce(spec.size, pool)]
    if not vit:
        status = "not tested"
    elif failed:
        status = "undecided"
    else:
        status = ("verified on data" if signs == {True} else "refuted" if signs == {False}
                  else "undecided")
    runs = sum(iv.n for by_size in summary["accuracy"].values() for iv in by_size.values())
    return {"claim": CLAIM, "status": status, "sentences": sentences,
            "scarce_sizes": scarce, "holm_rejected": sorted(rejected), "runs": runs,
            "diverged": [spec.id for spec in diverged]}


def _time_to_accuracy(table: dict, sizes: list[int]) -> dict:
    """Per size: two-phase's training time to reach the random-init attention network's
    final accuracy, as a fraction of that network's whole training time (per seed)."""
    out = {}
    for n in sizes:
        if ("two_phase", n) not in table or ("phase2_random", n) not in table:
            continue
        ratios = []
        for seed, base in table[("phase2_random", n)].items():
            two = table[("two_phase", n)].get(seed)
            if two is None:
                continue
            target = base.history[-1][2]  # final accuracy on the same evaluation images
            reached = [t for _, t, a in two.history if a >= target]
            ratios.append(reached[0] / base.train_seconds if reached else math.inf)
        out[n] = ratios
    return out


def figure(summary: dict, path: Path) -> Path:
    """Test accuracy against training-set size, 95% intervals as error bars."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for i, arm in enumerate(summary["arms"]):
        sizes = sorted(summary["accuracy"][arm])
        iv = [summary["accuracy"][arm][n] for n in sizes]
        shift = 0.03 * (i - (len(summary["arms"]) - 1) / 2)  # keeps the bars apart
        xs = [n * (1 + shift) for n in sizes]
        err = [[0 if math.isnan(v.low) else v.mean - v.low for v in iv],
               [0 if math.isnan(v.high) else v.high - v.mean for v in iv]]
        ax.errorbar(xs, [v.mean for v in iv], yerr=err, marker="o", capsize=3,
                    label=LABELS.get(arm, arm))
    ax.set_xscale("log")
    ax.set_xticks(summary["sizes"], [str(n) for n in summary["sizes"]])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("training images")
    ax.set_ylabel("test accuracy")
    ax.set_title("Accuracy against training-set size (mean, 95% interval over seeds)",
                 fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return path


def _fmt(iv: Interval) -> str:
    return f"{iv.mean:.3f}" if iv.n < 2 else f"{iv.mean:.3f} [{iv.low:.3f}, {iv.high:.3f}]"


def _ratio(values: list[float]) -> str:
    """The median over seeds, "never" counted as the largest value."""
    if not values:
        return "-"
    ordered = sorted(values)  # inf sorts last
    median = ordered[(len(ordered) - 1) // 2]  # the lower median: never flatters
    missing = sum(not math.isfinite(v) for v in values)
    text = f"{median:.2f}" if math.isfinite(median) else "never"
    return text + (f" ({missing} of {len(values)} never reached)" if missing else "")


def markdown(summary: dict, data_name: str, steps: int, eval_every: int) -> str:
    claim = summary["claim"]
    lines = [f"# Two-phase training on {data_name}", "",
             f"**Claim: {claim['claim']}. Status on these data: {claim['status']}** "
             f"({claim['runs']} runs; scarce: n <= {SCARCE:.0%} of the training set).", ""]
    lines += [f"* {sentence}" for sentence in claim["sentences"]]
    if summary["diverged"]:
        lines += ["", f"Diverged (non-finite loss; left out, pairs with them too): "
                      f"{', '.join(spec.id for spec in summary['diverged'])}."]
    lines += ["",
             f"Same optimiser, augmentation and budget ({steps} steps of 64 images) for every "
             "arm; intervals are 95% t-intervals over seeds (paired by seed and subset for "
             "differences).", "", "## Test accuracy", "",
             "| arm | " + " | ".join(f"n = {n}" for n in summary["sizes"]) + " |",
             "|---|" + "---|" * len(summary["sizes"])]
    for arm in summary["arms"]:
        lines.append(f"| {LABELS.get(arm, arm)} | " + " | ".join(
            _fmt(summary["accuracy"][arm][n]) if n in summary["accuracy"][arm] else "-"
            for n in summary["sizes"]) + " |")
    lines += ["", "## Paired difference: two-phase minus ...", "",
              "| arm | " + " | ".join(f"n = {n}" for n in summary["sizes"]) + " |",
              "|---|" + "---|" * len(summary["sizes"])]
    for arm, by_size in summary["differences"].items():
        lines.append(f"| {LABELS.get(arm, arm)} | " + " | ".join(
            (_points_interval(by_size[n]) + (" *" if by_size[n].excludes_zero else ""))
            if n in by_size else "-" for n in summary["sizes"]) + " |")
    lines += ["", "In accuracy points, with the 95% interval; `*`: the interval excludes 0.", "",
              "## Detectable difference", "",
              "The smallest true difference (accuracy points) that a two-sided paired t-test "
              "at 95% detects with 80% power, given the spread of the paired differences "
              "observed here.", "",
              "| two-phase minus | " + " | ".join(f"n = {n}" for n in summary["sizes"]) + " |",
              "|---|" + "---|" * len(summary["sizes"])]
    for arm, by_size in summary["detectable"].items():
        lines.append(f"| {LABELS.get(arm, arm)} | " + " | ".join(
            (f"{100 * by_size[n]:.1f}" if math.isfinite(by_size[n]) else "-")
            if n in by_size else "-" for n in summary["sizes"]) + " |")
    lines += ["", "## Throughput (training images/s)",
              "", "| arm | images/s | ratio to convolutional mixers |", "|---|---|---|"]
    base = summary["throughput"].get("phase1_only")
    for arm, ips in summary["throughput"].items():
        lines.append(f"| {LABELS.get(arm, arm)} | {ips:.0f} | "
                     f"{ips / base:.2f} |" if base else f"| {arm} | {ips:.0f} | - |")
    lines += ["", "## Time to accuracy", "",
              "Training time two-phase needs to reach the final accuracy of attention trained "
              "from random initialisation, as a fraction of that network's training time "
              f"(median over seeds; below 1 means faster). Both accuracies are measured on "
              f"the same first test images, every {eval_every} steps, so each value is an "
              "upper bound: the first measurement that reaches the target.", "",
              "| n | ratio |", "|---|---|"]
    lines += [f"| {n} | {_ratio(v)} |" for n, v in summary["time_to_accuracy"].items()]
    if summary["alpha"]:
        lines += ["", "## Softmax gap alpha at conversion (ablation)", "",
                  "Before and right after conversion: on the first test images (as the "
                  "curves); final: the whole test set.", "",
                  "| alpha | n | before conversion | right after conversion | final |",
                  "|---|---|---|---|---|"]
        lines += [f"| {a:g} | {g['size']} | {_fmt(g['before_conversion'])} | "
                  f"{_fmt(g['after_conversion'])} | {_fmt(g['final'])} |"
                  for a, g in summary["alpha"].items()]
    lines += ["", "![accuracy against training-set size](accuracy.png)", ""]
    return "\n".join(lines)


def latex(summary: dict, data_name: str, steps: int) -> str:
    """An ``\\input``-able results section (booktabs, graphicx)."""
    sizes = summary["sizes"]
    rows = "\n".join(
        f"{LABELS.get(arm, arm)} & " + " & ".join(
            f"${summary['accuracy'][arm][n].mean:.3f}$" if n in summary["accuracy"][arm]
            else "--" for n in sizes) + r" \\" for arm in summary["arms"])
    diff_rows = "\n".join(
        f"{LABELS.get(arm, arm)} & " + " & ".join(
            (f"${d[n].mean:+.3f}$" + ("" if d[n].n < 2 else
                                      f" $[{d[n].low:+.3f}, {d[n].high:+.3f}]$"))
            if n in d else "--" for n in sizes) + r" \\"
        for arm, d in summary["differences"].items())
    cols = "l" + "r" * len(sizes)
    head = " & ".join(f"$n={n}$" for n in sizes)
    claim = summary["claim"]
    items = ("\\begin{itemize}\n" + "\n".join(rf"\item {escape(s)}" for s in claim["sentences"])
             + "\n\\end{itemize}") if claim["sentences"] else "(no size compared with a ViT)."
    return rf"""% Generated by `vitconv reproduce`; \input into a paper (booktabs, graphicx).
\subsection{{Two-phase training on {escape(data_name)}}}\label{{sec:two-phase}}
\textbf{{Claim: {escape(claim['claim'])}. Status on these data: {escape(claim['status'])}}}
({claim['runs']} runs; verdict per training-set size against the conventional ViT, paired
95\% interval, and the difference the design detects with 80\% power):
{items}
Every arm had the same optimiser, augmentation and budget ({steps} steps of 64 images).
Table~\ref{{tab:two-phase-acc}} gives mean test accuracy over seeds and
Table~\ref{{tab:two-phase-diff}} the paired differences with 95\% $t$-intervals.
\begin{{table}}[ht]\centering\small
\caption{{Test accuracy against the number of training images.}}\label{{tab:two-phase-acc}}
\begin{{tabular}}{{{cols}}}\toprule
arm & {head}\\\midrule
{rows}
\bottomrule\end{{tabular}}\end{{table}}
\begin{{table}}[ht]\centering\small
\caption{{Two-phase minus each other arm in accuracy points, paired by seed and subset
(95\% interval).}}
\label{{tab:two-phase-diff}}
\begin{{tabular}}{{{cols}}}\toprule
arm & {head}\\\midrule
{diff_rows}
\bottomrule\end{{tabular}}\end{{table}}
\begin{{figure}}[ht]\centering
\includegraphics[width=0.6\linewidth]{{accuracy.png}}
\caption{{Accuracy against training-set size (95\% intervals).}}\label{{fig:two-phase}}
\end{{figure}}
"""


def _jsonable(summary: dict) -> dict:
    def conv(v):
        if isinstance(v, Interval | RunSpec):
            return conv(asdict(v)) if isinstance(v, Interval) else v.id
        if isinstance(v, dict):
            return {str(k): conv(x) for k, x in v.items()}
        if isinstance(v, list):
            return [conv(x) for x in v]
        if isinstance(v, float) and math.isnan(v):
            return None  # JSON has no NaN: a missing value
        return v if not (isinstance(v, float) and not math.isfinite(v)) else str(v)

    return conv(summary)


def write_results(results: list[RunResult], out_dir: Path, data_name: str, steps: int,
                  alpha_default: float, eval_every: int = 100, pool: int | None = None,
                  provenance: dict | None = None) -> dict[str, Path]:
    """``results.md``, ``results.json`` (schema :data:`SCHEMA`; its ``claim`` feeds the
    appendix of ``vitconv verify``), ``results.tex`` and ``accuracy.png``."""
    summary = summarise(results, alpha_default, pool)
    summary = {"schema": SCHEMA, "data": data_name, "pool": pool, "steps": steps,
               "provenance": provenance, **summary}
    return {
        "figure": figure(summary, out_dir / "accuracy.png"),
        "markdown": atomic_write_text(out_dir / "results.md",
                                      markdown(summary, data_name, steps, eval_every)),
        "latex": atomic_write_text(out_dir / "results.tex", latex(summary, data_name, steps)),
        "json": atomic_write_text(out_dir / "results.json",
                                  json.dumps(_jsonable(summary), indent=1) + "\n"),
    }


def _config_json(cfg: ExperimentConfig) -> dict:
    return json.loads(json.dumps(asdict(cfg)))


def provenance(cfg: ExperimentConfig, preset: str) -> dict:
    """What ``results.json`` records about how it was made: the preset it started from,
    whether the configuration is that preset's, the configuration, and the code."""
    return {"preset": preset, "is_preset": cfg == ExperimentConfig.preset(preset),
            "config": _config_json(cfg), "code": code_digest()}


def folder_name(split, cfg: ExperimentConfig, preset: str, *, device: str,
                user_data: bool) -> str:
    """The output folder of a ``vitconv reproduce`` run under ``--out``: named by the data
    (and, for a user's file, by a SHA-256 of its content: ``a/data.npz`` and ``b/data.npz``
    never share runs), ``-quick`` and ``-gpu`` apart, and a configuration changed on the
    command line by a hash of it: only a preset's own grid uses the preset's folder."""
    custom = cfg != ExperimentConfig.preset(preset)
    tag = hashlib.sha256(json.dumps(_config_json(cfg), sort_keys=True).encode()).hexdigest()
    return ("reproduce" + ("-quick" if preset == "quick" else "") + f"-{split.name}"
            + (f"-{split.digest[:8]}" if user_data else "")
            + ("" if device == "cpu" else "-gpu") + (f"-custom-{tag[:8]}" if custom else ""))


# The default grids whose claim the appendix of `vitconv verify` states, best powered first.
DEFAULT_FOLDERS = (("reproduce-fashion-mnist-gpu", "gpu"), ("reproduce-fashion-mnist", "default"),
                   ("reproduce-mnist-5k", "default"))
STATUSES = ("verified on data", "refuted", "undecided", "not tested")


def _checked_claim(data: dict, preset: str) -> dict:
    """The claim of a ``results.json``, refused (``ValueError``) unless it is the
    ``preset``'s own grid and every field the appendix prints is present and well typed."""
    if data.get("schema") != SCHEMA:
        raise ValueError(f"schema {data.get('schema')!r}, expected {SCHEMA!r}")
    made = data.get("provenance") or {}
    if made.get("preset") != preset or not made.get("is_preset") or (
            made.get("config") != _config_json(ExperimentConfig.preset(preset))):
        raise ValueError(f"not the {preset} grid (a configuration changed on the command "
                         "line, or an older preset)")
    claim = data["claim"]
    if (claim.get("status") not in STATUSES or not isinstance(claim.get("claim"), str)
            or not isinstance(claim.get("runs"), int)
            or not claim.get("sentences")
            or not all(isinstance(t, str) for t in claim["sentences"])):
        raise ValueError("its claim record is incomplete")
    return {"claim": claim["claim"], "status": claim["status"], "runs": claim["runs"],
            "sentences": list(claim["sentences"]), "data": str(data["data"]),
            "current_code": made.get("code") == code_digest()}


def default_claim(out: Path) -> tuple[dict | None, str]:
    """The claim's status from a default grid's ``results.json`` under ``out`` (GPU preset,
    then the 2-core default on Fashion-MNIST, then the MNIST fallback; the first usable
    one), for the appendix of ``vitconv verify``; with ``None``, the reasons there is none."""
    reasons = []
    for name, preset in DEFAULT_FOLDERS:
        path = out / name / "results.json"
        if not path.exists():
            continue
        try:
            claim = _checked_claim(json.loads(path.read_text()), preset)
        except (OSError, ValueError, TypeError, AttributeError) as err:
            reasons.append(f"{name}/results.json is unusable ({err})")
            continue
        except KeyError as err:
            reasons.append(f"{name}/results.json is unusable (no field {err})")
            continue
        return {**claim, "path": f"{name}/results.json"}, ""
    if reasons:
        return None, "; ".join(reasons) + "; rerun `vitconv reproduce`"
    return None, (f"no results of the default grid under {out} "
                  f"({', '.join(n for n, _ in DEFAULT_FOLDERS)}): run `make reproduce`")
