"""The report layer: printers, a failure made visible everywhere, and a compiling appendix."""

import dataclasses
import json
import shutil

import pytest
import sympy as sp

from vitconv.proofs import CheckContext, default_registry, run_checks
from vitconv.proofs.theorems import construction
from vitconv.report.json_report import run_document
from vitconv.report.latex import appendix_body, compile_pdf, escape, render_text, write_appendix
from vitconv.report.markdown import render, to_markdown
from vitconv.report.terminal import plain


def test_escape_and_render_golden():
    assert escape("a_b & 50% {x} ~ ^ # $") == (
        r"a\_b \& 50\% \{x\} \textasciitilde{} \textasciicircum{} \# \$")
    x = sp.Symbol("x")
    assert render_text(r"$<<f>>$ and <<g>>", {"f": x**2 / 2, "g": sp.floor(x)}) == \
        r"$\frac{x^{2}}{2}$ and \left\lfloor{x}\right\rfloor"


def test_markdown_and_terminal_text():
    assert to_markdown(r"\emph{Range.} see Lemma~\ref{thm:offset_lemma} and $a_b$") == \
        "*Range.* see Lemma [offset_lemma](#offset_lemma) and $a_b$"
    assert plain(r"exactly $\rho$ or $\rho + 1$ heads") == "exactly rho or rho + 1 heads"


@pytest.fixture(scope="module")
def sabotaged_record():
    """A quick run of two theorems where the property check fails on grouped convolutions."""
    original = construction.compare_case

    def broken(case, **kwargs):
        result = original(case, **kwargs)
        return dataclasses.replace(result, worst_ratio=5.0) if case.groups > 1 else result

    construction.compare_case = broken
    try:
        theorems, wanted = default_registry().select(["offset_lemma", "construction.property"])
        return run_checks(theorems, CheckContext(quick=True), obligation_ids=wanted)
    finally:
        construction.compare_case = original


def test_failure_is_visible_in_every_output(sabotaged_record, tmp_path):
    record = sabotaged_record
    by_id = {t.theorem.id: t for t in record.theorems}
    assert by_id["offset_lemma"].checked and not by_id["construction"].checked
    failed = by_id["construction"].obligations[0]
    assert failed.status == "failed"
    counterexample = failed.evidence.counterexample
    assert "groups=2" in counterexample and "ratio 5" in counterexample  # minimal: 2 groups
    doc = run_document(record)
    assert doc["passed"] is False
    assert {o["id"]: o["status"] for o in doc["obligations"]}["construction.property"] == "failed"
    registry = default_registry()
    body = appendix_body(record, registry, {})
    assert r"Machine check of \ref{thm:construction}: \textbf{NOT checked}" in body
    assert escape(counterexample) in body
    assert r"Machine check of \ref{thm:offset_lemma}: proved for all parameters" in body
    md = render(record, registry, {})
    assert "**NOT checked**" in md and counterexample in md
    verdicts = {t["id"]: t["verdict"] for t in doc["theorems"]}
    assert verdicts == {"offset_lemma": "proved", "construction": "failed"}
    assert doc["verdicts"] == {"proved": 1, "verified": 0, "refuted": 0, "partial": 0,
                               "failed": 1}
    json.dumps(doc)  # JSON-safe


def test_a_partial_run_proves_nothing_it_did_not_run():
    """--only on a sampled obligation of a proved statement: verified, never proved."""
    theorems, wanted = default_registry().select(["construction.named_cases"])
    record = run_checks(theorems, CheckContext(quick=True), obligation_ids=wanted)
    assert record.theorems[0].verdict == "partial"
    assert record.theorems[0].status_text == (
        "partially checked: 1 of 6 obligations ran (--only)")


@pytest.mark.skipif(shutil.which("latexmk") is None, reason="latexmk is not installed")
def test_appendix_compiles_without_undefined_references(sabotaged_record, tmp_path):
    tex = write_appendix(sabotaged_record, default_registry(), {}, tmp_path)
    result = compile_pdf(tex)
    assert result.ok, result.problems
    assert result.pages >= 3


def test_compile_pdf_survives_8_bit_tex_output(tmp_path, monkeypatch):
    """TeX writes font-encoding bytes (0xa7 for \\S) into its messages: no crash."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "latexmk"
    fake.write_text("#!/bin/sh\nprintf 'Overfull \\\\hbox \\247 3.1\\n! Emergency stop.\\n'\n"
                    "exit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    tex = tmp_path / "appendix.tex"
    tex.write_text("\\documentclass{article}\\begin{document}x\\end{document}\n")
    result = compile_pdf(tex)
    assert result.pdf is None and not result.ok
    assert any(p.startswith("! ") for p in result.problems)
