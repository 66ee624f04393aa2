"""The vitconv command: exit status, report files, argument errors."""

import json

import pytest

from proofs import Evidence, Obligation, Registry, Theorem
from report import cli


def test_verify_writes_json_and_exits_zero(tmp_path):
    status = cli.main(["verify", "--quick", "--only", "offset_lemma", "--out", str(tmp_path)])
    assert status == 0
    doc = json.loads((tmp_path / "verify" / "report.json").read_text())
    assert doc["schema"] == "vitconv.verify/2" and doc["passed"] is True
    assert {o["id"] for o in doc["obligations"]} == {
        "offset_lemma.certificates", "offset_lemma.smt", "offset_lemma.brute_force"}
    assert doc["mode"] == "quick" and doc["versions"]["torch"]


def test_verify_exits_nonzero_on_failure(tmp_path, monkeypatch, capsys):
    failing = Theorem("toy", "lemma", "Toy", "0", (), "s", "p", (Obligation(
        "toy.bad", "t", "numeric", lambda ctx: Evidence(False, "1", counterexample="x=1")),),
        family="toys")
    monkeypatch.setattr("proofs.default_registry", lambda: Registry([failing]))
    assert cli.main(["verify", "--out", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "x=1" in out and "NOT checked" in out


def test_unknown_only_name_is_an_argument_error(tmp_path):
    assert cli.main(["verify", "--only", "nonsense", "--out", str(tmp_path)]) == 2


def test_missing_cuda_is_reported(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(SystemExit, match="no CUDA device"):
        cli.main(["verify", "--device", "cuda", "--out", str(tmp_path)])
