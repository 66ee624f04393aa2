"""The LaTeX appendix: theorem objects and check results printed through a Jinja2 template.

Presentation lives here only (as in sympy's printers): a theorem's texts carry ``<<name>>``
placeholders that :func:`render_text` fills with ``sympy.latex`` of its formulas, so the
appendix shows the very objects the checks used. Plain strings from the checks are escaped
by :func:`escape`. :func:`compile_pdf` runs ``latexmk`` when it is installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import jinja2
import sympy as sp

from vitconv.numeric.files import atomic_write_text
from vitconv.proofs.checker import ObligationResult, RunRecord, TheoremResult
from vitconv.proofs.definitions import DEFINITIONS
from vitconv.proofs.registry import Registry
from vitconv.proofs.tables import HeadCounts, RhoTable

TEMPLATES = Path(__file__).parent / "templates"
_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
            "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
            "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}",
            "|": r"\textbar{}"}

FIGURES = {  # id: (caption, width as a fraction of the line)
    "attention_maps": ("The nine heads of a converted $3\\times3$ convolution on $2\\times2$ "
                       "patches: attention of one query (red) over the patch grid; hatched "
                       "tokens are the padding frame.", 0.62),
    "heads_vs_kernel": ("Heads needed against kernel size: the construction (solid) and the "
                        "lower bound $\\rho$ (dashed), for pixel tokens and patches.", 0.95),
    "gap_error": ("Error of a converted convolution against the softmax gap $\\alpha$, and the "
                  "bound of Proposition~\\ref{thm:softmax_gap}.", 0.6),
    "floor": ("Trained MHSAs with $H$ heads against the approximation floor "
              "(Proposition~\\ref{thm:approximation_floor}).", 0.6),
}


def escape(text: str) -> str:
    """Make a plain string safe inside LaTeX text."""
    return "".join(_SPECIAL.get(ch, ch) for ch in str(text))


def render_text(text: str, formulas: Mapping[str, sp.Basic]) -> str:
    """Replace every ``<<name>>`` with ``sympy.latex(formulas[name])``."""
    def formula(match: re.Match) -> str:
        return sp.latex(formulas[match.group(1)])

    return re.sub(r"<<(\w+)>>", formula, text)


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), block_start_string=r"\BLOCK{",
        block_end_string="}", variable_start_string=r"\VAR{", variable_end_string="}",
        comment_start_string=r"\#{", comment_end_string="}", trim_blocks=True,
        lstrip_blocks=True, autoescape=False, undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True)


def _margin(r: ObligationResult) -> str:
    e = r.evidence
    if e is None or e.worst is None:
        return "--"
    bound = f" / {e.bound:.3g}" if e.bound is not None else ""
    return escape(f"{e.worst:.3g}{bound}")


def _obligation_view(r: ObligationResult) -> dict:
    e = r.evidence
    status = {"passed": "passed", "failed": r"\textbf{FAILED}",
              "error": r"\textbf{ERROR}"}[r.status]
    counter = None
    if e is not None and e.counterexample:
        counter = escape(e.counterexample)
    elif r.error:
        counter = escape(r.error.strip().splitlines()[-1])
    return {"name": escape(r.obligation.id.partition(".")[2]),
            "method": f"{r.obligation.method}, {r.obligation.scope}",
            "status": status, "size": escape(e.size if e else "not run"),
            "margin": _margin(r), "time": f"{r.seconds:.2f}\\,s",
            "detail": escape(e.detail) if e and e.detail else "", "counterexample": counter}


def theorem_view(theorem, result: TheoremResult | None, date: str) -> dict:
    """Everything the template prints about one theorem (LaTeX strings)."""
    if result is None:
        verdict, obligations = "not run in this session", []
    else:
        verdict = {"failed": r"\textbf{NOT checked}", "refuted": r"\textbf{refuted}"}.get(
            result.verdict, escape(result.status_text))
        if result.verdict == "refuted":
            verdict += escape(f" (counterexample: {result.counterexample})")
        obligations = [_obligation_view(r) for r in result.obligations]
    f = theorem.formulas
    return {"id": theorem.id, "kind": theorem.kind, "title": theorem.title,
            "section": theorem.section, "date": escape(date), "verdict": verdict,
            "hypotheses": [render_text(h, f) for h in theorem.hypotheses],
            "statement": render_text(theorem.statement, f),
            "proof": render_text(theorem.proof, f), "obligations": obligations}


def summary_text(record: RunRecord) -> str:
    ok = sum(r.passed for r in record.obligations)
    return (f"{ok} of {len(record.obligations)} obligations passed; of "
            f"{len(record.theorems)} statements: {record.verdict_summary()}")


def claim_view(claim: Mapping | None, missing: str) -> dict:
    """The empirical claim's paragraph: its status on data with one sentence per size
    (from ``vitconv reproduce``'s ``results.json``), or why there is none."""
    if claim is None:
        return {"present": False, "missing": escape(missing)}
    return {"present": True, "claim": escape(claim["claim"]), "status": escape(claim["status"]),
            "data": escape(claim["data"]), "runs": int(claim["runs"]),
            "sentences": [escape(s) for s in claim["sentences"]],
            "path": escape(claim["path"]), "current_code": bool(claim["current_code"])}


def appendix_body(record: RunRecord, registry: Registry, figures: Mapping[str, Path],
                  claim: Mapping | None = None, claim_missing: str = "") -> str:
    """The ``\\input``-able body: definitions, every theorem with its check, tables,
    figures, and the empirical claim's status on data (``claim``, or why it is missing)."""
    date = record.started.replace("T", " ")
    results = {t.theorem.id: t for t in record.theorems}
    rho, heads = record.table(RhoTable), record.table(HeadCounts)
    context = {
        "mode": "quick" if record.context.quick else "full", "seed": record.context.seed,
        "date": escape(date), "summary": escape(summary_text(record)),
        "definitions": [{"id": d.id, "title": d.title, "text": render_text(d.text, d.formulas)}
                        for d in DEFINITIONS],
        "theorems": [theorem_view(t, results.get(t.id), date) for t in registry],
        "rho_table": rho.rows if rho else (),
        "heads_table": heads.rows if heads else (),
        "heads_channels": heads.channels if heads else 0,
        "figures": [{"id": k, "file": Path(p).name, "caption": FIGURES[k][0],
                     "width": FIGURES[k][1]} for k, p in figures.items() if k in FIGURES],
        "versions": [(escape(k), escape(v)) for k, v in record.versions.items()],
        "claim": claim_view(claim, claim_missing),
    }
    return _environment().get_template("appendix_body.tex").render(**context)


def appendix_document(record: RunRecord) -> str:
    """The standalone wrapper (article class) that inputs the body."""
    return _environment().get_template("appendix.tex").render(
        date=escape(record.started.split("T")[0]))


def write_appendix(record: RunRecord, registry: Registry, figures: Mapping[str, Path],
                   out_dir: Path, claim: Mapping | None = None, claim_missing: str = "") -> Path:
    """Write ``appendix.tex`` and ``appendix-body.tex`` atomically; returns the former."""
    atomic_write_text(out_dir / "appendix-body.tex",
                      appendix_body(record, registry, figures, claim, claim_missing))
    return atomic_write_text(out_dir / "appendix.tex", appendix_document(record))


@dataclass(frozen=True)
class CompileResult:
    """Outcome of :func:`compile_pdf`: the PDF (if any), pages, and problems found."""

    pdf: Path | None
    pages: int
    problems: tuple[str, ...]
    message: str

    @property
    def ok(self) -> bool:
        return self.pdf is not None and not self.problems


LATEX_HINT = ("latexmk is not installed; to build the PDF: apt-get install latexmk "
              "texlive-latex-base texlive-latex-recommended texlive-science")
_PROBLEMS = (r"LaTeX Warning: Reference .* undefined", r"LaTeX Warning: There were undefined",
             r"LaTeX Warning: Citation .* undefined", r"^! ")


def compile_pdf(tex: Path, timeout: float = 180) -> CompileResult:
    """Run ``latexmk -pdf`` on ``tex`` in its folder; report undefined references/errors."""
    if shutil.which("latexmk") is None:
        return CompileResult(None, 0, (), LATEX_HINT)
    cmd = ["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", tex.name]
    # TeX writes 8-bit bytes of the font encoding into its messages (overfull boxes that
    # hold a \S print byte 0xa7): decode leniently, never crash on a log.
    proc = subprocess.run(cmd, cwd=tex.parent, capture_output=True, timeout=timeout,
                          check=False)
    log = tex.with_suffix(".log")
    text = (log.read_text(errors="replace") if log.exists()
            else proc.stdout.decode(errors="replace"))
    problems = tuple(line for line in text.splitlines()
                     if any(re.search(p, line) for p in _PROBLEMS))
    pdf = tex.with_suffix(".pdf")
    if proc.returncode != 0 or not pdf.exists():
        return CompileResult(None, 0, problems or (f"latexmk exited {proc.returncode}",),
                             "LaTeX failed; see " + str(log))
    pages = re.search(r"Output written on .*\((\d+) pages?", text)
    return CompileResult(pdf, int(pages.group(1)) if pages else 0, problems,
                         f"PDF: {pdf}")
