"""Results of ``vitconv reproduce``: tables with intervals, a figure, throughput and
time-to-accuracy ratios, the alpha ablation; as Markdown, JSON and an ``\\input``-able LaTeX
section, all under the output folder.
"""

from __future__ import annotations

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
from vitconv.numeric.train.loop import RunResult
from vitconv.numeric.train.models import ARMS
from vitconv.numeric.train.stats import Interval, mean_interval, paired_difference

LABELS = {"two_phase": "two-phase (conv, then attention)",
          "phase2_random": "attention from random init",
          "phase1_only": "convolutional mixers throughout", "vit": "conventional ViT"}


def _main(results: list[RunResult], alpha_default: float) -> dict:
    """``(arm, size) -> {seed: result}`` for the main grid (ablation runs excluded)."""
    table: dict = defaultdict(dict)
    for r in results:
        if r.spec["alpha"] is None:
            table[(r.spec["arm"], r.spec["size"])][r.spec["seed"]] = r
    return table


def summarise(results: list[RunResult], alpha_default: float) -> dict:
    """Accuracy intervals, paired differences, throughput, time-to-accuracy, ablation."""
    table = _main(results, alpha_default)
    sizes = sorted({size for _, size in table})
    arms = [a for a in ARMS if any((a, n) in table for n in sizes)]
    acc = {a: {n: mean_interval([r.accuracy for r in table[(a, n)].values()])
               for n in sizes if (a, n) in table} for a in arms}
    diffs: dict = {}
    for other in arms:
        if other == "two_phase":
            continue
        diffs[other] = {}
        for n in sizes:
            if ("two_phase", n) in table and (other, n) in table:
                seeds = sorted(set(table[("two_phase", n)]) & set(table[(other, n)]))
                diffs[other][n] = paired_difference(
                    [table[("two_phase", n)][s].accuracy for s in seeds],
                    [table[(other, n)][s].accuracy for s in seeds])
    throughput = {a: sum(r.images_per_second for n in sizes for r in table[(a, n)].values())
                  / sum(len(table[(a, n)]) for n in sizes) for a in arms}
    tta = _time_to_accuracy(table, sizes)
    ablation: dict = defaultdict(list)
    for r in results:
        if r.spec["arm"] == "two_phase":
            a = r.spec["alpha"] if r.spec["alpha"] is not None else alpha_default
            ablation[(a, r.spec["size"])].append(r)
    ablation_sizes = {size for a, size in ablation if a != alpha_default}
    gap = {a: {"after_conversion": mean_interval([r.after_conversion for r in rs]),
               "before_conversion": mean_interval([r.before_conversion for r in rs]),
               "final": mean_interval([r.accuracy for r in rs]), "size": size}
           for (a, size), rs in sorted(ablation.items()) if size in ablation_sizes}
    return {"sizes": sizes, "arms": arms, "accuracy": acc, "differences": diffs,
            "throughput": throughput, "time_to_accuracy": tta, "alpha": gap}


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
            reached = [t for _, t, a in two.history if a >= base.accuracy]
            ratios.append(reached[0] / base.train_seconds if reached else math.inf)
        out[n] = ratios
    return out


def figure(summary: dict, path: Path) -> Path:
    """Test accuracy against training-set size, 95% intervals as error bars."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for i, arm in enumerate(summary["arms"]):
        sizes = sorted(summary["accuracy"][arm])
        iv = [summary["accuracy"][arm][n] for n in sizes]
        xs = [n * (1 + 0.03 * (i - 1.5)) for n in sizes]  # a small shift keeps bars apart
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
    finite = sorted(v for v in values if math.isfinite(v))
    missing = len(values) - len(finite)
    text = (f"{finite[len(finite) // 2]:.2f}" if finite else "never")
    return text + (f" ({missing} of {len(values)} never reached)" if missing and finite else "")


def markdown(summary: dict, data_name: str, steps: int, eval_every: int) -> str:
    lines = [f"# Two-phase training on {data_name}", "",
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
            (str(by_size[n]) + (" *" if by_size[n].excludes_zero else ""))
            if n in by_size else "-" for n in summary["sizes"]) + " |")
    lines += ["", "`*`: the interval excludes 0.", "", "## Throughput (training images/s)",
              "", "| arm | images/s | ratio to convolutional mixers |", "|---|---|---|"]
    base = summary["throughput"].get("phase1_only")
    for arm, ips in summary["throughput"].items():
        lines.append(f"| {LABELS.get(arm, arm)} | {ips:.0f} | "
                     f"{ips / base:.2f} |" if base else f"| {arm} | {ips:.0f} | - |")
    lines += ["", "## Time to accuracy", "",
              "Training time two-phase needs to reach the final accuracy of attention trained "
              "from random initialisation, as a fraction of that network's training time "
              f"(median over seeds; below 1 means faster). Accuracy is measured every "
              f"{eval_every} steps, so each value is an upper bound: the first measurement "
              "that reaches the target.", "", "| n | ratio |", "|---|---|"]
    lines += [f"| {n} | {_ratio(v)} |" for n, v in summary["time_to_accuracy"].items()]
    if summary["alpha"]:
        lines += ["", "## Softmax gap alpha at conversion (ablation)", "",
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
    return rf"""% Generated by `vitconv reproduce`; \input into a paper (booktabs, graphicx).
\subsection{{Two-phase training on {data_name}}}\label{{sec:two-phase}}
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
\caption{{Two-phase minus each other arm, paired by seed and subset (95\% interval).}}
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
        if isinstance(v, Interval):
            return asdict(v)
        if isinstance(v, dict):
            return {str(k): conv(x) for k, x in v.items()}
        if isinstance(v, list):
            return [conv(x) for x in v]
        return v if not (isinstance(v, float) and not math.isfinite(v)) else str(v)

    return conv(summary)


def write_results(results: list[RunResult], out_dir: Path, data_name: str, steps: int,
                  alpha_default: float, eval_every: int = 100) -> dict[str, Path]:
    """``results.md``, ``results.json``, ``results.tex`` and ``accuracy.png``."""
    summary = summarise(results, alpha_default)
    return {
        "figure": figure(summary, out_dir / "accuracy.png"),
        "markdown": atomic_write_text(out_dir / "results.md",
                                      markdown(summary, data_name, steps, eval_every)),
        "latex": atomic_write_text(out_dir / "results.tex", latex(summary, data_name, steps)),
        "json": atomic_write_text(out_dir / "results.json",
                                  json.dumps(_jsonable(summary), indent=1) + "\n"),
    }
