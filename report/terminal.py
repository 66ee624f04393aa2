"""The terminal view of a run: progress while checks run, a table, a one-line summary."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from vitconv.proofs.checker import ObligationResult, RunRecord
from vitconv.proofs.theorem import Obligation

STATUS_STYLE = {"passed": "[green]passed[/]", "failed": "[bold red]FAILED[/]",
                "error": "[bold red]ERROR[/]"}
VERDICT_STYLE = {"proved": "[bold green]proved[/]", "verified": "[cyan]verified[/]",
                 "refuted": "[yellow]refuted[/]", "partial": "[yellow]partial[/]",
                 "failed": "[bold red]NOT checked[/]"}


def plain(latex: str) -> str:
    """A title's LaTeX as terminal text: ``$\\rho + 1$`` -> ``rho + 1``."""
    text = re.sub(r"\\([A-Za-z]+)", r"\1", latex.replace("--", "-"))
    return text.replace("$", "").replace("{", "").replace("}", "")


def _margin(r: ObligationResult) -> str:
    e = r.evidence
    if e is None or e.worst is None:
        return ""
    return f"{e.worst:.3g}" + (f" / {e.bound:.3g}" if e.bound is not None else "")


def results_table(record: RunRecord) -> Table:
    """One row per obligation: status, size of the check, worst vs bound, time."""
    table = Table(title="vitconv verify", expand=False)
    table.add_column("obligation", no_wrap=True)
    table.add_column("method")
    table.add_column("status", no_wrap=True)
    table.add_column("checked", overflow="fold")
    table.add_column("worst / bound", justify="right", no_wrap=True)
    table.add_column("time", justify="right", no_wrap=True)
    for t in record.theorems:
        mark = VERDICT_STYLE[t.verdict]
        table.add_row(f"[bold]{t.theorem.id}[/]", t.theorem.kind, mark,
                      f"[bold]{plain(t.theorem.title)}[/] (docs/theory.md "
                      f"§{t.theorem.section}): {t.status_text}", "", "")
        for r in t.obligations:
            size = r.evidence.size if r.evidence else (r.error or "").strip().splitlines()[-1]
            table.add_row(f"  {r.obligation.slug}", f"{r.obligation.method}, {r.obligation.scope}",
                          STATUS_STYLE[r.status], size, _margin(r), f"{r.seconds:.2f}s",
                          end_section=r is t.obligations[-1])
    return table


def summary_line(record: RunRecord) -> str:
    """E.g. ``all 6 obligations passed; 2/2 theorems checked in 7.1 s (quick, seed 0, cpu)``."""
    obligations = record.obligations
    ok = sum(r.passed for r in obligations)
    mode = "quick" if record.context.quick else "full"
    head = (f"all {ok} obligations passed" if ok == len(obligations)
            else f"{len(obligations) - ok} of {len(obligations)} obligations FAILED")
    return (f"{head}; {len(record.theorems)} statements: {record.verdict_summary()}; "
            f"{record.seconds:.1f} s ({mode}, seed {record.context.seed}, "
            f"{record.context.device})")


def failure_details(record: RunRecord) -> Iterator[str]:
    """Counterexamples and errors of the failed obligations, for printing under the table."""
    for r in record.obligations:
        if r.passed:
            continue
        if r.evidence and r.evidence.counterexample:
            yield f"{r.obligation.id}: counterexample: {r.evidence.counterexample}"
        if r.error:
            yield f"{r.obligation.id}: error:\n{r.error}"


@contextmanager
def progress_display(console: Console, total: int):
    """Yields ``(on_start, on_result)`` callbacks that drive a rich progress bar."""
    progress = Progress(TextColumn("{task.description}"), BarColumn(),
                        TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                        console=console, transient=True)
    task = progress.add_task("checking", total=total)

    def on_start(obligation: Obligation) -> None:
        progress.update(task, description=f"checking {obligation.id}")

    def on_result(result: ObligationResult) -> None:
        progress.advance(task)

    with progress:
        yield on_start, on_result
