"""The grid of ``vitconv reproduce``: every arm x training-set size x seed, plus an ablation
of the softmax gap ``alpha`` used by the two-phase conversion.

Runs are independent and resumable: each finished run leaves ``runs/<id>.json``
(atomically) and is skipped next time; an unfinished one resumes from
``checkpoints/<id>.ckpt``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vitconv.numeric.files import atomic_write_text, exclusive
from vitconv.numeric.train.data import Split
from vitconv.numeric.train.loop import RunResult, RunSpec, TrainConfig, train_run
from vitconv.numeric.train.models import ARMS, NetConfig

SIZES = (250, 500, 1000, 2000, 4000)


@dataclass(frozen=True)
class ExperimentConfig:
    """The whole experiment. Defaults: the full grid, about 50 minutes on 2 CPU cores."""

    sizes: tuple[int, ...] = SIZES
    seeds: int = 3
    arms: tuple[str, ...] = ARMS
    ablation_alphas: tuple[float, ...] = (4.0, 16.0)  # besides train.alpha
    ablation_size: int = 1000
    train: TrainConfig = field(default_factory=TrainConfig)
    patch_size: int = 4

    @classmethod
    def quick(cls) -> ExperimentConfig:
        """Tiny sizes, one seed, short runs: a smoke test of every stage (CI)."""
        return cls(sizes=(250, 1000), seeds=1, ablation_alphas=(4.0,), ablation_size=250,
                   train=TrainConfig(steps=100, eval_every=25, checkpoint_every=50))

    def net_for(self, split: Split) -> NetConfig:
        """Networks shaped for the data (image size, channels, classes)."""
        split.check_patch_size(self.patch_size)
        C, H, W = split.image_shape
        if H != W:
            raise ValueError(f"{split.name}: images must be square, got {H}x{W}")
        return NetConfig(image_size=H, in_channels=C, classes=split.classes,
                         patch_size=self.patch_size)

    def sizes_for(self, split: Split) -> tuple[int, ...]:
        """The configured sizes that fit the training pool, plus the whole pool for a
        user's data set."""
        pool = len(split.train_labels)
        sizes = [n for n in self.sizes if n <= pool]
        if split.name != "mnist-5k" and pool not in sizes:
            sizes.append(pool)
        return tuple(sizes)

    def runs(self, split: Split) -> list[RunSpec]:
        grid = [RunSpec(arm, n, seed) for n in self.sizes_for(split)
                for seed in range(self.seeds) for arm in self.arms]
        if self.ablation_size <= len(split.train_labels):
            grid += [RunSpec("two_phase", self.ablation_size, seed, alpha)
                     for alpha in self.ablation_alphas for seed in range(self.seeds)]
        return grid


def load_results(out_dir: Path) -> list[RunResult]:
    """Every finished run found in ``out_dir/runs``."""
    paths = sorted((out_dir / "runs").glob("*.json"))
    return [RunResult(**json.loads(p.read_text())) for p in paths]


def run_experiment(cfg: ExperimentConfig, split: Split, out_dir: Path, *,
                   on_run: Callable[[RunSpec, int], None] | None = None,
                   on_step: Callable[[RunSpec, int], None] | None = None,
                   device: str = "cpu") -> list[RunResult]:
    """Run (or resume) every run of the grid; returns all results, old and new.

    ``on_run(spec, steps_already_done)`` is called before each run, ``on_step(spec, step)``
    after each training step (for progress displays).
    """
    net = cfg.net_for(split)
    identity = json.dumps({"experiment": asdict(cfg), "net": asdict(net),
                           "data": {"name": split.name, "sha256": split.digest}},
                          indent=1) + "\n"
    with exclusive(out_dir / ".lock", f"the experiment folder {out_dir}"):
        return _run_grid(cfg, split, out_dir, identity, net, on_run, on_step, device)


def _run_grid(cfg: ExperimentConfig, split: Split, out_dir: Path, identity: str,
              net: NetConfig, on_run: Callable[[RunSpec, int], None] | None,
              on_step: Callable[[RunSpec, int], None] | None,
              device: str) -> list[RunResult]:
    """The grid's runs, resumed or skipped, under the folder lock of :func:`run_experiment`."""
    runs_dir, ckpt_dir = out_dir / "runs", out_dir / "checkpoints"
    config = out_dir / "config.json"
    if config.exists() and config.read_text() != identity:
        raise ValueError(f"{out_dir} holds results of a different configuration (see "
                         f"{config}); choose another --out or delete that folder")
    atomic_write_text(config, identity)
    results = []
    for spec in cfg.runs(split):
        done = runs_dir / f"{spec.id}.json"
        if done.exists():
            results.append(RunResult(**json.loads(done.read_text())))
            if on_run:
                on_run(spec, cfg.train.steps)
            continue
        if on_run:
            on_run(spec, 0)
        result, _ = train_run(spec, split, net, cfg.train, ckpt_dir, device=device,
                              on_step=(lambda step, s=spec: on_step(s, step)) if on_step else None)
        atomic_write_text(done, json.dumps(asdict(result), indent=1) + "\n")
        results.append(result)
    return results
