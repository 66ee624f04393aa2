"""The vitconv command: exit status, report files, argument errors."""

import json

import pytest

from vitconv.proofs import Evidence, Obligation, Registry, Theorem
from vitconv.report import cli


def test_verify_writes_json_and_exits_zero(tmp_path):
    status = cli.main(["verify", "--quick", "--only", "offset_lemma", "--out", str(tmp_path)])
    assert status == 0
    doc = json.loads((tmp_path / "verify" / "report.json").read_text())
    assert doc["schema"] == "vitconv.verify/3" and doc["passed"] is True
    assert {o["id"] for o in doc["obligations"]} == {
        "offset_lemma.certificates", "offset_lemma.smt", "offset_lemma.brute_force"}
    assert doc["mode"] == "quick" and doc["versions"]["torch"]


def test_verify_exits_nonzero_on_failure(tmp_path, monkeypatch, capsys):
    failing = Theorem("toy", "lemma", "Toy", "0", (), "s", "p", (Obligation(
        "toy.bad", "t", "numeric", lambda ctx: Evidence(False, "1", counterexample="x=1")),),
        family="toys")
    monkeypatch.setattr("vitconv.proofs.default_registry", lambda: Registry([failing]))
    assert cli.main(["verify", "--out", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "x=1" in out and "NOT checked" in out


def test_unknown_only_name_is_an_argument_error(tmp_path):
    assert cli.main(["verify", "--only", "nonsense", "--out", str(tmp_path)]) == 2


def test_missing_cuda_is_reported(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert cli.main(["verify", "--device", "cuda", "--out", str(tmp_path)]) == 2
    assert "no CUDA device" in capsys.readouterr().err


def test_bad_numbers_are_argument_errors(capsys):
    for argv in (["bounds", "--kernel", "3", "--patch", "2", "--stride", "0"],
                 ["bounds", "--kernel", "-3", "--patch", "2"],
                 ["train", "--arm", "vit", "--size", "-5"],
                 ["reproduce", "--sizes", "0"], ["reproduce", "--sizes", "-3"]):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(argv)
        assert exit_info.value.code == 2, argv
        assert "must be a positive integer" in capsys.readouterr().err


def test_bounds_answers_real_shapes_at_once(capsys):
    import time

    start = time.perf_counter()
    assert cli.main(["bounds", "--kernel", "201", "--patch", "1", "--in", "64",
                     "--out", "64"]) == 0
    assert cli.main(["bounds", "--kernel", "21", "--patch", "2", "--in", "8", "--out", "8"]) == 0
    out = capsys.readouterr().out
    assert "lower bound:  64 heads" in out  # pixels: min(K^2, C_in C_out), closed form
    assert "over the budget of 20,000 entries" in out  # refused, with the reason
    assert time.perf_counter() - start < 30  # generous: the point is no 2-minute hang


def test_verify_out_that_is_a_file_is_refused_before_any_work(tmp_path, capsys):
    target = tmp_path / "a-file"
    target.write_text("x")
    assert cli.main(["verify", "--quick", "--out", str(target)]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err


def test_report_set_comes_from_one_run_and_has_one_mode(tmp_path, monkeypatch):
    argv = ["verify", "--quick", "--only", "offset_lemma", "--pdf", "no", "--out", str(tmp_path)]
    assert cli.main(argv) == 0
    folder = tmp_path / "verify"
    first = (folder / "report.json").read_text()
    modes = {p.name: p.stat().st_mode & 0o777 for p in folder.rglob("*") if p.is_file()}
    assert len(set(modes.values())) == 1, modes  # reports and figures alike

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("vitconv.report.markdown.write_markdown", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cli.main(argv)
    assert (folder / "report.json").read_text() == first  # the old set, whole
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".verify")]


def test_reproduce_folders_are_named_by_preset_data_and_changes():
    """The default grid has its folder; ``--data fashion-mnist`` is the default data, not
    a user's file; any change on the command line gets a folder of its own."""
    import argparse
    from dataclasses import replace
    from pathlib import Path

    from vitconv.numeric.train.data import mnist_split
    from vitconv.numeric.train.experiment import ExperimentConfig
    from vitconv.report.cli import _experiment, _preset, _user_data
    from vitconv.report.reproduce import folder_name

    split = mnist_split()
    args = argparse.Namespace(quick=False, seeds=None, sizes=None, steps=None, arms=None,
                              alphas=None)
    assert _preset(args, "cpu") == "default" and _preset(args, "cuda:0") == "gpu"
    assert _experiment(args) == ExperimentConfig()
    assert folder_name(split, ExperimentConfig(), "default", device="cpu",
                       user_data=False) == "reproduce-mnist-5k"
    assert not _user_data(Path("fashion-mnist")) and not _user_data(None)
    assert _user_data(Path("data.npz"))
    changed = _experiment(argparse.Namespace(**{**vars(args), "seeds": 2}))
    assert changed == replace(ExperimentConfig(), seeds=2)
    assert folder_name(split, changed, "default", device="cpu",
                       user_data=False).startswith("reproduce-mnist-5k-custom-")
    assert folder_name(split, ExperimentConfig.gpu(), "gpu", device="cuda",
                       user_data=False) == "reproduce-mnist-5k-gpu"
