"""``report.md``: the run for people reading it on the web (GitHub renders ``$...$`` math).

The theorem texts are the appendix's LaTeX; :func:`to_markdown` turns their few text-mode
commands into Markdown and leaves the mathematics alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from vitconv.numeric.files import atomic_write_text
from vitconv.proofs.checker import RunRecord, TheoremResult
from vitconv.proofs.registry import Registry
from vitconv.proofs.tables import HeadCounts, RhoTable
from vitconv.report.latex import render_text, summary_text

_TEXT_COMMANDS = ((r"\\emph\{([^}]*)\}", r"*\1*"), (r"\\textbf\{([^}]*)\}", r"**\1**"),
                  (r"\\texttt\{([^}]*)\}", r"`\1`"), (r"\\S", "§"), (r"\\ldots|\\dots", "..."),
                  (r"`([^`']*)'", r"'\1'"), (r"\\mathbb\{Q\}", r"\\mathbb{Q}"))
_REFS = {"tab:rho": "the rho table", "tab:heads": "the head-count table"}


def to_markdown(latex: str) -> str:
    """Text-mode LaTeX to Markdown; ``$...$`` spans are kept verbatim."""
    latex = re.sub(r"\\\[(.*?)\\\]", lambda m: f"\n\n$${m.group(1)}$$\n\n", latex, flags=re.S)
    parts = re.split(r"(\$\$.*?\$\$|\$[^$]*\$)", latex, flags=re.S)
    out = []
    for i, part in enumerate(parts):
        if i % 2 == 1:  # mathematics
            out.append(part.replace("\\dfrac", "\\frac"))
            continue
        for pattern, repl in _TEXT_COMMANDS:
            part = re.sub(pattern, repl, part)
        part = re.sub(r"~?\\ref\{thm:(\w+)\}", r" [\1](#\1)", part)
        part = re.sub(r"~?\\ref\{(tab:\w+)\}", lambda m: " " + _REFS.get(m.group(1), m.group(1)),
                      part)
        out.append(part.replace("~", " "))
    return "".join(out)


def _verdict(result: TheoremResult) -> str:
    text = result.status_text
    return f"**{text}**" if result.verdict in ("failed", "refuted") else text


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render(record: RunRecord, registry: Registry, figures: Mapping[str, Path]) -> str:
    """The Markdown report: summary, obligations table, statements, tables, figures."""
    ctx = record.context
    lines = [
        "# vitconv verify report", "",
        f"{record.started} · {'quick' if ctx.quick else 'full'} run · seed {ctx.seed} · "
        f"device {record.versions.get('device', ctx.device)} · {record.seconds:.1f} s", "",
        f"**{'All statements checked' if record.passed else 'SOME STATEMENTS NOT CHECKED'}**: "
        f"{summary_text(record)}.", "",
        "| statement | how it is known |", "|---|---|",
        *[f"| [{t.theorem.id}](#{t.theorem.id}) | {_cell(_verdict(t))} |"
          for t in record.theorems], "",
        "| statement | obligation | method | scope | status | checked | worst / bound | time |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for t in record.theorems:
        for r in t.obligations:
            e = r.evidence
            margin = "" if e is None or e.worst is None else (
                f"{e.worst:.3g}" + (f" / {e.bound:.3g}" if e.bound is not None else ""))
            status = r.status if r.passed else f"**{r.status.upper()}**"
            lines.append(f"| [{t.theorem.id}](#{t.theorem.id}) | {r.obligation.id} | "
                         f"{r.obligation.method} | {r.obligation.scope} | {status} | "
                         f"{_cell(e.size if e else '')} | "
                         f"{margin} | {r.seconds:.2f} s |")
    lines += ["", "## Statements", ""]
    results = {t.theorem.id: t for t in record.theorems}
    for theorem in registry:
        result = results.get(theorem.id)
        verdict = "not run in this session" if result is None else _verdict(result)
        f = theorem.formulas
        lines += [f'<a id="{theorem.id}"></a>', "",
                  f"### {theorem.title}", "",
                  f"*{theorem.kind.capitalize()}, docs/theory.md §{theorem.section}* · "
                  f"{verdict}", "",
                  "Hypotheses:", ""]
        lines += [f"{i}. {to_markdown(render_text(h, f))}"
                  for i, h in enumerate(theorem.hypotheses, 1)]
        lines += ["", f"**Statement.** {to_markdown(render_text(theorem.statement, f))}", "",
                  "<details><summary>Proof</summary>", "",
                  to_markdown(render_text(theorem.proof, f)), "", "</details>", ""]
        for r in (result.obligations if result else ()):
            e = r.evidence
            if e and e.counterexample:
                lines += [f"> **Counterexample** ({r.obligation.id}): `{e.counterexample}`", ""]
            if r.error:
                lines += [f"> **Error** ({r.obligation.id}):", "", "```",
                          r.error.strip(), "```", ""]
    lines += _tables(record)
    if figures:
        lines += ["## Figures", ""]
        lines += [f"![{name}](figures/{Path(p).name})" for name, p in figures.items()]
        lines.append("")
    lines += ["## Environment", "", "| | |", "|---|---|"]
    lines += [f"| {k} | `{_cell(v)}` |" for k, v in record.versions.items()]
    return "\n".join(lines) + "\n"


def _tables(record: RunRecord) -> list[str]:
    lines: list[str] = []
    table = record.table(RhoTable)
    if table is not None and table.rows:
        rho = table.rows
        lines += ["## The rho table", "",
                  "Exact generic rank (certified), stride and dilation 1, 'same' padding.", "",
                  "| P | K | C_in | C_out | construction | rho "
                  "| min(#offsets, (2P-1)^2 C_in C_out) |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {r.P} | {r.K} | {r.C_in} | {r.C_out} | "
                  f"{r.construction_heads} | {r.rho} | {r.formula} |" for r in rho]
        lines.append("")
    counts = record.table(HeadCounts)
    if counts is not None and counts.rows:
        heads = counts.rows
        lines += ["## Heads: pixel vs patch tokens", "",
                  "| K | pixels: construction | pixels: rho | P=2: construction | P=2: rho | "
                  "P=4: construction | P=4: rho |", "|---|---|---|---|---|---|---|"]
        lines += [f"| {r.K} | {r.plan_1} | {r.rho_1} | {r.plan_2} | {r.rho_2} | "
                  f"{r.plan_4} | {r.rho_4} |" for r in heads]
        lines.append("")
    return lines


def write_markdown(record: RunRecord, registry: Registry, figures: Mapping[str, Path],
                   out_dir: Path) -> Path:
    return atomic_write_text(out_dir / "report.md", render(record, registry, figures))
