"""The ``vitconv`` command line: ``verify`` checks every theorem, ``bench`` measures speed.

Exit status: 0 when everything passed, 1 when an obligation failed, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from rich.console import Console

DEFAULT_OUT = Path("out")


class UsageError(ValueError):
    """A bad argument found after parsing: one line on stderr, exit status 2."""


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (argparse then reports the argument by name)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: no CUDA device is available here")
    if name != "cpu" and not name.startswith("cuda"):
        raise UsageError(f"--device {name}: expected cpu, cuda, cuda:N or auto")
    return name


def _writable_folder(path: Path) -> Path:
    """``path`` as an output folder: created if missing; refused at once when it is a file
    or cannot be written (not after minutes of checks)."""
    import os
    import tempfile

    if path.exists() and not path.is_dir():
        raise UsageError(f"--out {path}: exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise UsageError(f"--out {path}: cannot write there ({err.strerror or err})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(f"--out {path}: cannot write there (permission denied)")
    return path


def cmd_verify(args: argparse.Namespace, console: Console) -> int:
    import warnings

    # torch's own note about how it pads even kernels; irrelevant to the checks.
    warnings.filterwarnings("ignore", message="Using padding='same' with even kernel")
    from vitconv.numeric.files import replace_folder
    from vitconv.proofs import CheckContext, default_registry, run_checks
    from vitconv.report.terminal import (
        failure_details,
        progress_display,
        results_table,
        summary_line,
    )

    registry = default_registry()
    try:
        theorems, wanted = registry.select(args.only)
    except KeyError as err:
        console.print(f"[red]vitconv verify: {err.args[0]}[/]")
        return 2
    ctx = CheckContext(quick=args.quick, seed=args.seed, device=_device(args.device))
    _writable_folder(args.out)
    total = sum(1 for t in theorems for o in t.obligations if wanted is None or o.id in wanted)
    with progress_display(console, total) as (on_start, on_result):
        record = run_checks(theorems, ctx, obligation_ids=wanted,
                            on_start=on_start, on_result=on_result)
    out_dir = args.out / "verify"
    console.print(results_table(record))
    for line in failure_details(record):
        console.print(f"[red]{line}[/]")
    # The whole report set is written to a fresh folder and swapped in at the end, so
    # out/verify always holds the files of one run (never a new json beside an old md).
    staging = Path(tempfile.mkdtemp(prefix=".verify-", dir=args.out))
    try:
        pdf_ok = _write_reports(record, registry, staging, args, console)
        replace_folder(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    console.print(f"written: {out_dir}/ (report.json, report.md, appendix.tex, figures/)")
    console.print(("[green]" if record.passed else "[bold red]") + summary_line(record) + "[/]")
    return 0 if record.passed and pdf_ok else 1


def _write_reports(record, registry, folder: Path, args: argparse.Namespace,
                   console: Console) -> bool:
    """JSON, Markdown, the appendix and its figures into ``folder``; the PDF as asked.
    Returns whether the PDF requirement held."""
    from vitconv.report.figures import all_figures
    from vitconv.report.json_report import write_json
    from vitconv.report.latex import compile_pdf, write_appendix
    from vitconv.report.markdown import write_markdown
    from vitconv.report.reproduce import default_claim

    figures = all_figures(record, folder / "figures")
    claim, missing = default_claim(args.out)
    paths = [write_json(record, folder), write_markdown(record, registry, figures, folder),
             write_appendix(record, registry, figures, folder, claim, missing)]
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
            console.print(f"appendix: {args.out / 'verify' / result.pdf.name} "
                          f"({result.pages} pages)")
    return pdf_ok


def cmd_bench(args: argparse.Namespace, console: Console) -> int:
    from vitconv.report.bench import NETWORKS, run_benchmarks

    unknown = [n for n in args.networks or () if n not in NETWORKS]
    if unknown:
        raise UsageError(f"--networks {' '.join(unknown)}: unknown; known: "
                         f"{', '.join(NETWORKS)}")
    return run_benchmarks(args.out / "bench", console, quick=args.quick, seed=args.seed,
                          device=_device(args.device), networks=tuple(args.networks or ()),
                          image=args.image)


def cmd_bounds(args: argparse.Namespace, console: Console) -> int:
    from vitconv.report.bounds_text import describe

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


def _user_data(source: object) -> bool:
    """Whether ``--data`` names a user's file or folder (not the default Fashion-MNIST)."""
    return source is not None and str(source) != "fashion-mnist"


def _preset(args: argparse.Namespace, device: str) -> str:
    """``quick`` with ``--quick``; ``gpu`` on a CUDA device; else ``default`` (2 cores)."""
    return "quick" if args.quick else "gpu" if device.startswith("cuda") else "default"


def _experiment(args: argparse.Namespace, device: str = "cpu"):
    """The preset of :func:`_preset` with the command line's changes."""
    from dataclasses import replace

    from vitconv.numeric.train.experiment import ExperimentConfig

    cfg = ExperimentConfig.preset(_preset(args, device))
    changes: dict = {}
    if args.seeds is not None:
        changes["seeds"] = args.seeds
    if args.sizes:
        changes["sizes"] = tuple(args.sizes)
        if args.seeds is None and isinstance(cfg.seeds, tuple):
            changes["seeds"] = max(cfg.seeds)
    if getattr(args, "arms", None):
        changes["arms"], changes["controls"] = tuple(args.arms), ()
    if getattr(args, "alphas", None) is not None:
        changes["ablation_alphas"] = tuple(args.alphas)
    train = {k: v for k, v in (("steps", args.steps),
                                ("checkpoint_every", getattr(args, "checkpoint_every", None)),
                                ("dtype", getattr(args, "dtype", None))) if v is not None}
    if train:
        changes["train"] = replace(cfg.train, **train)
    return replace(cfg, **changes) if changes else cfg


def cmd_reproduce(args: argparse.Namespace, console: Console) -> int:
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from vitconv.numeric.train.data import DataError, default_source, load_data
    from vitconv.numeric.train.experiment import run_experiment
    from vitconv.report.reproduce import folder_name, provenance, write_results

    device = _device(args.device)
    source, note = (args.data, None) if args.data is not None else default_source()
    if note:
        console.print(f"[yellow]{note}[/]")
    try:
        cfg = _experiment(args, device)
        split = load_data(source)
        runs = cfg.runs(split)
        cfg.net_for(split)
    except (DataError, ValueError) as err:
        console.print(f"[red]vitconv reproduce: {err}[/]")
        return 2
    preset = _preset(args, device)
    out_dir = args.out / folder_name(split, cfg, preset, device=device,
                                     user_data=_user_data(source))
    made = provenance(cfg, preset)
    console.print(f"preset: {preset}" + ("" if made["is_preset"] else
                                         ", changed on the command line (a folder of its own)"))
    console.print(f"{len(runs)} runs on {split.name} ({len(split.train_labels)} training, "
                  f"{len(split.test_labels)} test images), {cfg.train.steps} steps each; "
                  f"output: {out_dir} (finished runs are kept and skipped on a rerun)")
    columns = (TextColumn("{task.description}"), BarColumn(),
               TextColumn("{task.completed}/{task.total} steps"), TimeElapsedColumn(),
               TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("starting", total=len(runs) * cfg.train.steps)
        offset = {"base": 0}

        def on_run(spec, already):
            offset["base"] = progress.tasks[0].completed + already
            progress.update(task, description=spec.id, completed=offset["base"])

        def on_step(spec, step):
            progress.update(task, completed=offset["base"] + step)

        try:
            results = run_experiment(cfg, split, out_dir, on_run=on_run, on_step=on_step,
                                     device=device)
        except (ValueError, RuntimeError) as err:
            console.print(f"[red]vitconv reproduce: {err}[/]")
            return 1
    try:
        paths = write_results(results, out_dir, split.name, cfg.train.steps, cfg.train.alpha,
                              cfg.train.eval_every, pool=len(split.train_labels),
                              provenance=made)
    except (ValueError, KeyError, OSError) as err:  # the runs stay: a rerun only reports
        console.print(f"[red]vitconv reproduce: the runs finished but the report failed: "
                      f"{type(err).__name__}: {err}[/]")
        return 1
    console.print(paths["markdown"].read_text(), markup=False, highlight=False)
    console.print("written: " + ", ".join(str(p) for p in paths.values()))
    return 0


def cmd_train(args: argparse.Namespace, console: Console) -> int:
    import os

    import torch.distributed as dist

    from vitconv.numeric.train.data import DataError, default_source, load_data
    from vitconv.numeric.train.loop import RunSpec, train_run

    distributed, rank = int(os.environ.get("WORLD_SIZE", "1")) > 1, 0
    device = _device(args.device)
    if distributed:  # launched by torchrun: gloo on CPU, NCCL with one GPU per process
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
        rank = dist.get_rank()
        if device.startswith("cuda"):
            device = f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
    try:
        cfg = _experiment(args, device)
        source, note = (args.data, None) if args.data is not None else default_source()
        if note and rank == 0:
            console.print(f"[yellow]{note}[/]")
        split = load_data(source)
        spec = RunSpec(args.arm, args.size, args.seed, args.alpha)
        result, _ = train_run(spec, split, cfg.net_for(split), cfg.train,
                              args.out / "train", device=device)
    except (DataError, ValueError) as err:
        console.print(f"[red]vitconv train: {err}[/]")
        return 2
    except RuntimeError as err:  # another writer holds the run, or the loss diverged
        console.print(f"[red]vitconv train: {err}[/]")
        return 1
    finally:
        if distributed:
            dist.destroy_process_group()
    if rank == 0:
        console.print(f"{spec.id}: test accuracy {result.accuracy:.4f} "
                      f"({result.images_per_second:.0f} images/s)")
    return 0


def _padding(text: str) -> str | int:
    return int(text) if text.lstrip("-").isdigit() else text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vitconv", description="Convolution inside self-attention, checked.")
    from vitconv import __version__

    parser.add_argument("--version", action="version", version=f"vitconv {__version__}")
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

    bench = sub.add_parser("bench", help="speed and memory as ratios: layers, networks, "
                                          "training steps, proof times")
    bench.add_argument("--quick", action="store_true",
                       help="fewer repetitions, resnet50 only, 64x64 images (a smoke run)")
    bench.add_argument("--networks", nargs="+", metavar="NAME",
                       help="pytorchcv networks (default: resnet50 efficientnet_b0 "
                            "mobilenetv3_large_w1; also mobilenetv3_small_w1, resnet18, "
                            "regnetx002)")
    bench.add_argument("--image", type=positive_int, default=None,
                       help="image side in pixels (default: 224; 64 with --quick)")
    bench.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    bench.add_argument("--seed", type=int, default=0)
    bench.add_argument("--out", type=Path, default=DEFAULT_OUT)
    bench.set_defaults(func=cmd_bench)
    bounds = sub.add_parser("bounds", help="heads needed for a convolution shape, patch and pixel")
    bounds.add_argument("--kernel", type=positive_int, required=True, help="kernel size K")
    bounds.add_argument("--patch", type=positive_int, required=True, help="patch size P")
    bounds.add_argument("--in", dest="in_channels", type=positive_int, default=1)
    bounds.add_argument("--out", dest="out_channels", type=positive_int, default=1)
    bounds.add_argument("--stride", type=positive_int, default=1)
    bounds.add_argument("--dilation", type=positive_int, default=1)
    bounds.add_argument("--padding", type=_padding, default="same",
                        help="'same', 'valid' or an int (default: same)")
    bounds.add_argument("--groups", type=positive_int, default=1)
    bounds.set_defaults(func=cmd_bounds)
    def experiment_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--quick", action="store_true",
                       help="two sizes, 1 seed, 60 steps of small networks: a smoke test of "
                            "every stage (about 2 minutes on 2 cores)")
        p.add_argument("--data", default=None,  # text: "./fashion-mnist" is a folder
                       help="fashion-mnist (the Debian package dataset-fashion-mnist), a "
                            "folder of IDX files, a CIFAR-10/100 python-pickle folder or a "
                            ".npz file (default: Fashion-MNIST when installed, otherwise the "
                            "built-in 5,000-image MNIST subset)")
        p.add_argument("--seeds", type=positive_int, default=None,
                       help="seeds per size (default 5 at 1%%, 3%% and 10%% of the training "
                            "set, 3 at 100%%)")
        p.add_argument("--sizes", type=positive_int, nargs="+", default=None,
                       help="training-set sizes (default 1%%, 3%%, 10%% and 100%% of the "
                            "training set)")
        p.add_argument("--steps", type=positive_int, default=None,
                       help="steps per run (default 250; 2,000 on a GPU)")
        p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
        p.add_argument("--out", type=Path, default=DEFAULT_OUT)

    reproduce = sub.add_parser("reproduce", help="the two-phase training experiment")
    experiment_options(reproduce)
    reproduce.add_argument("--arms", nargs="+", default=None,
                           help="arms at every size (default: two_phase phase1_only vit "
                                "convit, and phase2_random at the smallest size)")
    reproduce.add_argument("--alphas", type=float, nargs="*", default=None,
                           help="softmax gaps to ablate at the smallest size (default none)")
    reproduce.set_defaults(func=cmd_reproduce)

    train = sub.add_parser("train", help="one training run (works under torchrun for DDP)")
    experiment_options(train)
    train.add_argument("--arm", required=True,
                       help="two_phase, phase2_random, phase1_only, vit or convit")
    train.add_argument("--size", type=positive_int, required=True, help="training images")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--alpha", type=float, default=None, help="softmax gap at conversion")
    train.add_argument("--checkpoint-every", type=positive_int, default=None,
                       help="steps between checkpoints (default: the experiment's)")
    train.add_argument("--dtype", choices=("float32", "float64"), default=None)
    train.set_defaults(func=cmd_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Logs (CI) are not terminals; give them a readable width instead of rich's 80.
    console = Console(width=None if sys.stdout.isatty() else 120)
    try:
        return args.func(args, console)
    except UsageError as err:
        print(f"vitconv {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
