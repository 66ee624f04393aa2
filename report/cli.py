"""The ``vitconv`` command line: ``verify`` checks every theorem, ``bench`` measures speed.

Exit status: 0 when everything passed, 1 when an obligation failed, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

DEFAULT_OUT = Path("out")


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"vitconv: --device {name}: no CUDA device is available here")
    if name != "cpu" and not name.startswith("cuda"):
        raise SystemExit(f"vitconv: --device {name}: expected cpu, cuda, cuda:N or auto")
    return name


def cmd_verify(args: argparse.Namespace, console: Console) -> int:
    import warnings

    # torch's own note about how it pads even kernels; irrelevant to the checks.
    warnings.filterwarnings("ignore", message="Using padding='same' with even kernel")
    from proofs import CheckContext, default_registry, run_checks
    from report.figures import all_figures
    from report.json_report import write_json
    from report.latex import compile_pdf, write_appendix
    from report.markdown import write_markdown
    from report.terminal import failure_details, progress_display, results_table, summary_line

    registry = default_registry()
    try:
        theorems, wanted = registry.select(args.only)
    except KeyError as err:
        console.print(f"[red]vitconv verify: {err.args[0]}[/]")
        return 2
    ctx = CheckContext(quick=args.quick, seed=args.seed, device=_device(args.device))
    total = sum(1 for t in theorems for o in t.obligations if wanted is None or o.id in wanted)
    with progress_display(console, total) as (on_start, on_result):
        record = run_checks(theorems, ctx, obligation_ids=wanted,
                            on_start=on_start, on_result=on_result)
    out_dir = args.out / "verify"
    console.print(results_table(record))
    for line in failure_details(record):
        console.print(f"[red]{line}[/]")
    figures = all_figures(record, out_dir / "figures")
    paths = [write_json(record, out_dir), write_markdown(record, registry, figures, out_dir),
             write_appendix(record, registry, figures, out_dir)]
    console.print("written: " + ", ".join(str(p) for p in paths) + f", {len(figures)} figures")
    pdf_ok = True
    if args.pdf != "no":
        result = compile_pdf(paths[-1])
        if result.pdf is None and result.problems == () and args.pdf == "auto":
            console.print(f"[yellow]{result.message}[/]")
        elif not result.ok:
            pdf_ok = False
            console.print(f"[bold red]appendix: {result.message}[/]")
            for line in result.problems[:10]:
                console.print(f"[red]  {line}[/]", highlight=False)
        else:
            console.print(f"appendix: {result.pdf} ({result.pages} pages)")
    console.print(("[green]" if record.passed else "[bold red]") + summary_line(record) + "[/]")
    return 0 if record.passed and pdf_ok else 1


def cmd_bench(args: argparse.Namespace, console: Console) -> int:
    from report.bench import run_benchmarks

    return run_benchmarks(args.out / "bench", console, quick=args.quick, seed=args.seed)


def cmd_bounds(args: argparse.Namespace, console: Console) -> int:
    from report.bounds_text import describe

    try:
        lines = describe(args.kernel, args.patch, args.in_channels, args.out_channels,
                         stride=args.stride, dilation=args.dilation, padding=args.padding,
                         groups=args.groups)
    except (TypeError, ValueError) as err:
        console.print(f"[red]vitconv bounds: {err}[/]")
        return 2
    for line in lines:
        console.print(line, highlight=False)
    return 0


def _padding(text: str) -> str | int:
    return int(text) if text.lstrip("-").isdigit() else text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vitconv", description="Convolution inside self-attention, checked.")
    sub = parser.add_subparsers(dest="command", required=True)

    verify = sub.add_parser("verify", help="check every theorem obligation, write the report")
    verify.add_argument("--quick", action="store_true",
                        help="smaller checks (same theorems), about 20 s on 2 cores")
    verify.add_argument("--only", nargs="+", metavar="NAME",
                        help="theorem or obligation ids to check (default: all)")
    verify.add_argument("--seed", type=int, default=0, help="seed of every random check")
    verify.add_argument("--device", default="cpu",
                        help="cpu, cuda, cuda:N or auto (cuda when available)")
    verify.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="output folder (default: out/, git-ignored)")
    verify.add_argument("--pdf", choices=("auto", "yes", "no"), default="auto",
                        help="compile the appendix with latexmk: when installed (auto), "
                             "required (yes, fails without it), or not at all")
    verify.set_defaults(func=cmd_verify)

    bench = sub.add_parser("bench", help="forward time of attention vs Conv2d; proof times")
    bench.add_argument("--quick", action="store_true", help="fewer repetitions")
    bench.add_argument("--seed", type=int, default=0)
    bench.add_argument("--out", type=Path, default=DEFAULT_OUT)
    bench.set_defaults(func=cmd_bench)
    bounds = sub.add_parser("bounds", help="heads needed for a convolution shape, patch and pixel")
    bounds.add_argument("--kernel", type=int, required=True, help="kernel size K")
    bounds.add_argument("--patch", type=int, required=True, help="patch size P")
    bounds.add_argument("--in", dest="in_channels", type=int, default=1)
    bounds.add_argument("--out", dest="out_channels", type=int, default=1)
    bounds.add_argument("--stride", type=int, default=1)
    bounds.add_argument("--dilation", type=int, default=1)
    bounds.add_argument("--padding", type=_padding, default="same",
                        help="'same', 'valid' or an int (default: same)")
    bounds.add_argument("--groups", type=int, default=1)
    bounds.set_defaults(func=cmd_bounds)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Logs (CI) are not terminals; give them a readable width instead of rich's 80.
    console = Console(width=None if sys.stdout.isatty() else 120)
    return args.func(args, console)


if __name__ == "__main__":
    sys.exit(main())
