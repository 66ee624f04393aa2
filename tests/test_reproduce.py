"""The experiment runner and its report, on a tiny configuration."""

import json
from dataclasses import replace

import pytest

from vitconv.numeric.train.data import mnist_split
from vitconv.numeric.train.experiment import ExperimentConfig, load_results, run_experiment
from vitconv.numeric.train.loop import TrainConfig
from vitconv.report.reproduce import summarise, write_results

TINY = ExperimentConfig(sizes=(250,), seeds=2, ablation_alphas=(4.0,), ablation_size=250,
                        train=TrainConfig(steps=6, batch_size=16, eval_every=3,
                                          checkpoint_every=3, warmup=1))


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    out = tmp_path_factory.mktemp("reproduce")
    split = mnist_split()
    results = run_experiment(TINY, split, out)
    return out, split, results


def test_grid_runs_and_reports(experiment):
    out, split, results = experiment
    assert len(results) == 4 * 2 + 2  # arms x seeds, plus the alpha ablation
    paths = write_results(results, out, split.name, TINY.train.steps, TINY.train.alpha)
    summary = json.loads(paths["json"].read_text())
    assert set(summary["accuracy"]) == {"two_phase", "phase2_random", "phase1_only", "vit"}
    assert "two-phase minus" in paths["markdown"].read_text().lower()
    assert r"\subsection{Two-phase training" in paths["latex"].read_text()
    assert paths["figure"].stat().st_size > 1000


def test_rerun_skips_finished_runs(experiment, monkeypatch):
    out, split, _ = experiment
    import vitconv.numeric.train.experiment as module

    monkeypatch.setattr(module, "train_run", lambda *a, **k: pytest.fail("retrained"))
    assert len(run_experiment(TINY, split, out)) == 10
    assert len(load_results(out)) == 10


def test_a_different_configuration_is_refused(experiment):
    out, split, _ = experiment
    with pytest.raises(ValueError, match="different configuration"):
        run_experiment(replace(TINY, seeds=1), split, out)


def test_summary_pairs_by_seed(experiment):
    _, _, results = experiment
    summary = summarise(results, TINY.train.alpha)
    diff = summary["differences"]["vit"][250]
    assert diff.n == 2
    assert set(summary["alpha"]) == {4.0, TINY.train.alpha}
