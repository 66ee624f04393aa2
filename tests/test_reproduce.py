"""The experiment runner and its report, on a tiny configuration."""

import json
import math
from dataclasses import replace

import pytest

from vitconv.numeric.train.data import mnist_split
from vitconv.numeric.train.experiment import ExperimentConfig, load_results, run_experiment
from vitconv.numeric.train.loop import TrainConfig
from vitconv.report.reproduce import latex, summarise, write_results

TINY = ExperimentConfig(sizes=(250,), seeds=2, ablation_alphas=(4.0,), channels=4, depth=1,
                        train=TrainConfig(steps=6, batch_size=16, eval_every=3,
                                          checkpoint_every=3, warmup=1, eval_images=100))


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    out = tmp_path_factory.mktemp("reproduce")
    split = mnist_split()
    results = run_experiment(TINY, split, out)
    return out, split, results


def test_grid_runs_and_reports(experiment):
    out, split, results = experiment
    assert len(results) == (4 + 1) * 2 + 2  # arms and control x seeds, the alpha ablation
    paths = write_results(results, out, split.name, TINY.train.steps, TINY.train.alpha,
                          pool=len(split.train_labels))
    summary = json.loads(paths["json"].read_text())
    assert set(summary["accuracy"]) == {"two_phase", "phase2_random", "phase1_only", "vit",
                                        "convit"}
    assert summary["schema"] == "vitconv.reproduce/1" and summary["pool"] == 4000
    assert summary["claim"]["status"] in ("verified on data", "refuted", "undecided")
    assert len(summary["claim"]["sentences"]) == 1
    assert "two-phase minus" in paths["markdown"].read_text().lower()
    assert r"\subsection{Two-phase training" in paths["latex"].read_text()
    assert paths["figure"].stat().st_size > 1000


def test_rerun_skips_finished_runs(experiment, monkeypatch):
    out, split, _ = experiment
    import vitconv.numeric.train.experiment as module

    monkeypatch.setattr(module, "train_run", lambda *a, **k: pytest.fail("retrained"))
    assert len(run_experiment(TINY, split, out)) == 12
    assert len(load_results(out)) == 12


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


def test_history_and_final_accuracy_use_their_test_images(tmp_path):
    """The curve's last point is the trained model's accuracy on the first ``eval_images``
    test images, the final accuracy on the whole test set (recomputed here)."""
    from vitconv.numeric.train.loop import RunSpec, _tensors, accuracy, train_run

    split = mnist_split()
    spec = RunSpec("phase1_only", 250, 0)
    result, model = train_run(spec, split, TINY.net_for(split), TINY.train, tmp_path)
    _, _, x_test, y_test = _tensors(split, spec.size, spec.seed)
    n = TINY.train.eval_images
    assert n < len(y_test)
    assert result.accuracy == accuracy(model, x_test, y_test)
    assert result.history[-1] == [TINY.train.steps, result.train_seconds,
                                  accuracy(model, x_test[:n], y_test[:n])]


# --- the default grid ---------------------------------------------------------------------

class _Pool:
    """A stand-in split: only the sizes matter to the grid."""

    def __init__(self, pool: int, classes: int = 10) -> None:
        import numpy as np

        self.train_labels, self.classes, self.name = np.zeros(pool), classes, "pool"


def test_default_grid_spans_one_to_hundred_percent_with_five_seeds_where_scarce():
    cfg = ExperimentConfig()
    fashion = _Pool(60_000)
    assert cfg.sizes_for(fashion) == (600, 1800, 6000, 60_000)
    assert cfg.seeds_for(fashion) == {600: 5, 1800: 5, 6000: 5, 60_000: 3}
    runs = cfg.runs(fashion)
    assert {r.arm for r in runs if r.size == 600} == {"two_phase", "phase1_only", "vit",
                                                      "convit", "phase2_random"}
    assert {r.arm for r in runs if r.size > 600} == {"two_phase", "phase1_only", "vit",
                                                     "convit"}
    assert len(runs) == 4 * (5 + 5 + 5 + 3) + 5
    assert len({r.id for r in runs}) == len(runs)
    # the MNIST fallback: fractions of its 4,000-image pool
    assert ExperimentConfig().sizes_for(_Pool(4000)) == (40, 120, 400, 4000)
    assert ExperimentConfig.gpu().sizes_for(fashion)[-1] == 60_000


@pytest.mark.parametrize("changes, rule", [
    ({"fractions": (0.0, 0.5)}, "fractions"),
    ({"fractions": (1.5,)}, "fractions"),
    ({"seeds": (5, 5)}, "one number per size"),
    ({"seeds": 0}, "seeds"),
    ({"arms": ("vit", "convit")}, "two_phase"),
    ({"arms": ("two_phase", "resnet")}, "one of"),
    ({"controls": ("nope",)}, "one of"),
    ({"sizes": (0,), "seeds": 1}, "sizes"),
])
def test_bad_grids_are_refused_by_name(changes, rule):
    with pytest.raises(ValueError, match=rule):
        replace(ExperimentConfig(), **changes)


def test_sizes_beyond_the_pool_are_dropped_and_none_left_is_an_error():
    cfg = ExperimentConfig(sizes=(100, 10_000), seeds=(2, 3))
    assert cfg.seeds_for(_Pool(4000)) == {100: 2}
    with pytest.raises(ValueError, match="no training-set size fits"):
        ExperimentConfig(sizes=(10_000,), seeds=1).runs(_Pool(4000))


# --- the claim's verdict --------------------------------------------------------------------

def _results(accuracies: dict) -> list:
    """``{(arm, size): [accuracy per seed]}`` as run results."""
    from vitconv.numeric.train.loop import RunResult

    return [RunResult({"arm": arm, "size": n, "seed": s, "alpha": None}, acc,
                      history=[[10, 1.0, acc]], train_seconds=1.0, images_per_second=1.0)
            for (arm, n), accs in accuracies.items() for s, acc in enumerate(accs)]


NOISE = [0.004, -0.003, 0.001, -0.002, 0.0]


def _grid(two_minus_vit: dict) -> list:
    """Two-phase at 0.80 (+noise); ViT and ConViT shifted by the given difference per size."""
    table = {}
    for n, d in two_minus_vit.items():
        table[("two_phase", n)] = [0.8 + e for e in NOISE]
        table[("vit", n)] = [0.8 - d + 0.5 * e for e in NOISE]
        table[("convit", n)] = [0.8 - d for _ in NOISE]
    return _results(table)


@pytest.mark.parametrize("differences, status", [
    ({600: 0.05, 6000: 0.0, 60_000: -0.05}, "verified on data"),
    ({600: -0.05, 6000: 0.0, 60_000: 0.05}, "refuted"),
    ({600: 0.0, 6000: 0.001, 60_000: 0.05}, "undecided"),       # support only when data abound
    ({600: 0.05, 6000: -0.05, 60_000: 0.0}, "undecided"),       # mixed at the scarce sizes
])
def test_claim_status_follows_the_stated_rule(differences, status):
    summary = summarise(_grid(differences), 8.0, pool=60_000)
    claim = summary["claim"]
    assert claim["status"] == status
    assert claim["scarce_sizes"] == [600, 6000]
    assert len(claim["sentences"]) == 3 and "ConViT" in claim["sentences"][0]
    first = differences[600]
    word = "supported" if first > 0.01 else "refuted" if first < -0.01 else "undecided"
    assert claim["sentences"][0].startswith(f"n = 600 (1% of the training set): {word}")


def test_detectable_difference_is_reported_per_comparison():
    summary = summarise(_grid({600: 0.05}), 8.0, pool=60_000)
    mde = summary["detectable"]["vit"][600]
    assert 0 < mde < 0.05
    assert f"detects {100 * mde:.1f} points" in summary["claim"]["sentences"][0]


def test_the_appendix_states_the_claim_from_the_default_results(tmp_path):
    from vitconv.report.reproduce import default_claim

    claim, why = default_claim(tmp_path)
    assert claim is None and "make reproduce" in why
    folder = tmp_path / "reproduce-fashion-mnist"
    folder.mkdir()
    (folder / "results.json").write_text('{"schema": "other"}')
    claim, why = default_claim(tmp_path)
    assert claim is None and "unusable" in why
    from vitconv.report.reproduce import provenance

    def write(cfg, preset):
        return write_results(_grid({600: 0.05, 6000: 0.02}), folder, "fashion-mnist", 250,
                             8.0, pool=60_000, provenance=provenance(cfg, preset))

    write(replace(ExperimentConfig(), seeds=2), "default")  # a changed grid: not the claim's
    claim, why = default_claim(tmp_path)
    assert claim is None and "not the default grid" in why
    paths = write(ExperimentConfig(), "default")
    claim, _ = default_claim(tmp_path)
    assert claim["status"] == "verified on data" and claim["data"] == "fashion-mnist"
    assert claim["current_code"] and claim["path"] == "reproduce-fashion-mnist/results.json"
    assert r"Status on these data: verified on data" in paths["latex"].read_text()


def test_holm_decides_the_overall_status():
    """Three scarce sizes each just significant alone (p ~ 0.02-0.04) are not all rejected
    by Holm; a single clear one is enough for *verified*, a clear one each way is mixed."""
    from vitconv.numeric.train.stats import holm

    assert holm({1: 0.04, 2: 0.03, 3: 0.02}) == set()
    assert holm({1: 0.001, 2: 0.04, 3: 0.5}) == {1}
    assert holm({1: 0.001, 2: 0.02, 3: float("nan")}) == {1, 2}
    summary = summarise(_grid({600: 0.05, 1800: -0.05, 6000: 0.0}), 8.0, pool=60_000)
    assert summary["claim"]["status"] == "undecided"
    assert summary["claim"]["holm_rejected"] == [600, 1800]


def _diverged(arm: str, size: int, seed: int):
    from vitconv.numeric.train.loop import RunResult

    return RunResult({"arm": arm, "size": size, "seed": seed, "alpha": None}, float("nan"),
                     diverged="loss is nan at step 3")


def test_a_diverged_run_is_listed_left_out_and_leaves_the_claim_undecided():
    results = [*_grid({600: 0.05, 6000: 0.05}), _diverged("two_phase", 600, 9)]
    summary = summarise(results, 8.0, pool=60_000)
    assert [spec.id for spec in summary["diverged"]] == ["two_phase-n600-s9"]
    assert summary["accuracy"]["two_phase"][600].n == 5
    assert summary["claim"]["status"] == "undecided"  # a failure is not left out silently
    assert "Diverged and left out: two_phase-n600-s9" in summary["claim"]["sentences"][0]
    # a diverged ConViT run does not touch the claim against the ViT
    results = [*_grid({600: 0.05, 6000: 0.05}), _diverged("convit", 600, 9)]
    assert summarise(results, 8.0, pool=60_000)["claim"]["status"] == "verified on data"


def test_no_shared_seed_no_vit_arm_and_plentiful_data_are_reported_not_crashed():
    results = [r for r in _grid({600: 0.05})  # two-phase has seed 0 only, the ViT 1-4
               if not (r.spec["arm"] == "two_phase" and r.spec["seed"] > 0)
               and not (r.spec["arm"] == "vit" and r.spec["seed"] == 0)]
    summary = summarise(results, 8.0, pool=60_000)
    assert 600 not in summary["differences"]["vit"]
    assert summary["claim"]["status"] == "not tested" and summary["claim"]["sentences"] == []
    assert r"\item" not in latex(summary, "fashion-mnist", 250)
    plenty = summarise(_grid({60_000: -0.05}), 8.0, pool=60_000)["claim"]
    assert plenty["sentences"][0].startswith(
        "n = 60000 (100% of the training set), data not scarce (a reference): two-phase behind")
    assert plenty["status"] == "undecided" and plenty["scarce_sizes"] == []


def test_scarce_rounds_as_the_grid_rounds_and_json_has_no_nan(tmp_path):
    from vitconv.report.reproduce import is_scarce

    cfg = ExperimentConfig()
    for pool in (1235, 5015, 60_000):
        tenth = cfg.sizes_for(_Pool(pool))[2]
        assert is_scarce(tenth, pool) and not is_scarce(pool, pool)
    results = _grid({600: 0.05})[:3]  # one seed of each arm: intervals without bounds
    paths = write_results(results, tmp_path, "x", 10, 8.0, pool=60_000)
    assert "NaN" not in paths["json"].read_text()


def test_time_to_accuracy_median_counts_never():
    from vitconv.report.reproduce import _ratio

    assert _ratio([0.5, math.inf, math.inf]) == "never (2 of 3 never reached)"
    assert _ratio([0.2, 0.5, math.inf]) == "0.50 (1 of 3 never reached)"
    assert _ratio([]) == "-"
