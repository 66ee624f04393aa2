"""The grid of ``vitconv reproduce``: every arm x training-set size x seed, plus an ablation
of the softmax gap ``alpha`` used by the two-phase conversion.

Runs are independent and resumable: each finished run leaves ``runs/<id>.json``
(atomically) and is skipped next time; an unfinished one resumes from
``checkpoints/<id>.ckpt``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vitconv.numeric.files import atomic_write_text, exclusive
from vitconv.numeric.train.data import Split
from vitconv.numeric.train.loop import (
    RunResult,
    RunSpec,
    TrainConfig,
    TrainingDivergedError,
    train_run,
)
from vitconv.numeric.train.models import ARMS, NetConfig
from vitconv.numeric.train.provenance import code_digest

PRESETS = ("default", "quick", "gpu")
FRACTIONS = (0.01, 0.03, 0.1, 1.0)  # of the training pool: Fashion-MNIST 600 ... 60,000


@dataclass(frozen=True)
class ExperimentConfig:
    """The whole experiment; the defaults are the grid of ``vitconv reproduce`` on 2 CPU
    cores (about 90 minutes on Fashion-MNIST; README, "Two-phase training").

    * ``fractions`` of the training pool (or absolute ``sizes``, which take precedence);
    * ``seeds``: per size (a tuple as long as the sizes) or one number for all; fewer
      seeds where data is plentiful, since the claim is about scarce data;
    * ``arms`` run at every size; ``controls`` (attention from random initialisation,
      the slowest arm) only at the smallest size, where the claim is sharpest;
    * the softmax-gap ablation: ``ablation_alphas`` besides ``train.alpha`` at the
      smallest size (none by default: it was measured on MNIST, see the README);
    * the network: ``depth`` blocks of ``patch_size**2 * channels``-wide tokens.
    """

    fractions: tuple[float, ...] = FRACTIONS
    sizes: tuple[int, ...] | None = None
    seeds: int | tuple[int, ...] = (5, 5, 5, 3)
    arms: tuple[str, ...] = ("two_phase", "phase1_only", "vit", "convit")
    controls: tuple[str, ...] = ("phase2_random",)
    ablation_alphas: tuple[float, ...] = ()
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=250, eval_every=50,
                                                                   checkpoint_every=50))
    patch_size: int = 4
    channels: int = 12   # 4x4 patches of 12 channels: 192-wide tokens (DeiT-Ti's width)
    depth: int = 4

    def __post_init__(self) -> None:
        unknown = [a for a in self.arms + self.controls if a not in ARMS]
        if unknown or not self.arms:
            raise ValueError(f"arms={self.arms}, controls={self.controls}: every arm must be "
                             f"one of {', '.join(ARMS)}, and arms must not be empty")
        if "two_phase" not in self.arms:
            raise ValueError("arms must include 'two_phase': every comparison is against it")
        if not self.sizes and not self.fractions:
            raise ValueError("give training-set sizes or fractions")
        if any(not 0 < f <= 1 for f in self.fractions):
            raise ValueError(f"fractions={self.fractions} must lie in (0, 1]")
        if self.sizes is not None and any(n < 1 for n in self.sizes):
            raise ValueError(f"sizes={self.sizes} must be positive")
        count = len(self.sizes) if self.sizes else len(self.fractions)
        if isinstance(self.seeds, tuple) and len(self.seeds) != count:
            raise ValueError(f"seeds={self.seeds}: one number per size ({count} sizes), or "
                             "one number for all")
        if min(self.seeds if isinstance(self.seeds, tuple) else (self.seeds,)) < 1:
            raise ValueError(f"seeds={self.seeds} must be >= 1")

    @classmethod
    def quick(cls) -> ExperimentConfig:
        """Two sizes, one seed, short runs of small networks, every arm, one ablation: a
        smoke test of every stage (CI)."""
        return cls(fractions=(0.01, 0.1), seeds=1, ablation_alphas=(16.0,), channels=8,
                   depth=2, train=TrainConfig(steps=60, eval_every=20, checkpoint_every=30,
                                              warmup=10))

    @classmethod
    def gpu(cls) -> ExperimentConfig:
        """The GPU preset (``--device cuda``): six sizes from 1% to 100%, 10 seeds each,
        2,000 steps per run, and the alpha ablation."""
        return cls(fractions=(0.01, 0.02, 0.05, 0.1, 0.3, 1.0), seeds=10,
                   ablation_alphas=(4.0, 16.0),
                   train=TrainConfig(steps=2000, eval_every=200, checkpoint_every=200,
                                     warmup=100))

    @classmethod
    def preset(cls, name: str) -> ExperimentConfig:
        """One of :data:`PRESETS` by name."""
        if name not in PRESETS:
            raise ValueError(f"preset={name!r}; presets: {', '.join(PRESETS)}")
        return {"default": cls, "quick": cls.quick, "gpu": cls.gpu}[name]()

    def net_for(self, split: Split) -> NetConfig:
        """Networks shaped for the data (image size, channels, classes)."""
        split.check_patch_size(self.patch_size)
        C, H, W = split.image_shape
        if H != W:
            raise ValueError(f"{split.name}: images must be square, got {H}x{W}")
        # ViT and ConViT alike: ConViT-Ti's 4 heads (48 wide at width 192), so the two
        # differ only in GPSA
        heads = 4 if (self.patch_size**2 * self.channels) % 4 == 0 else 1
        return NetConfig(image_size=H, in_channels=C, classes=split.classes,
                         patch_size=self.patch_size, channels=self.channels, depth=self.depth,
                         vit_heads=heads, gpsa_heads=heads)

    def sizes_for(self, split: Split) -> tuple[int, ...]:
        """Training-set sizes: ``sizes`` that fit the pool, or ``fractions`` of the pool
        (at least one image per class)."""
        return tuple(sorted(self.seeds_for(split)))

    def seeds_for(self, split: Split) -> dict[int, int]:
        """Seeds per size (sizes beyond the pool are dropped with their seeds)."""
        pool = len(split.train_labels)
        planned = (list(self.sizes) if self.sizes else
                   [max(split.classes, round(f * pool)) for f in self.fractions])
        seeds = self.seeds if isinstance(self.seeds, tuple) else (self.seeds,) * len(planned)
        out: dict[int, int] = {}
        for n, s in zip(planned, seeds, strict=True):
            if n <= pool:
                out[n] = max(out.get(n, 0), s)
        return out

    def runs(self, split: Split) -> list[RunSpec]:
        seeds = self.seeds_for(split)
        if not seeds:
            raise ValueError(f"no training-set size fits the {len(split.train_labels)} "
                             f"training images of {split.name}")
        smallest = min(seeds)
        grid = [RunSpec(arm, n, seed) for n in sorted(seeds) for seed in range(seeds[n])
                for arm in self.arms + (self.controls if n == smallest else ())]
        grid += [RunSpec("two_phase", smallest, seed, alpha)
                 for alpha in dict.fromkeys(self.ablation_alphas) if alpha != self.train.alpha
                 for seed in range(seeds[smallest])]  # the main runs already have train.alpha
        return grid


def identity(cfg: ExperimentConfig, split: Split) -> str:
    """What a grid folder's results depend on (``config.json``): the configuration, the
    networks, the data's content and the code."""
    return json.dumps({"experiment": asdict(cfg), "net": asdict(cfg.net_for(split)),
                       "data": {"name": split.name, "sha256": split.digest},
                       "code": code_digest()}, indent=1) + "\n"


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
    with exclusive(out_dir / ".lock", f"the experiment folder {out_dir}"):
        return _run_grid(cfg, split, out_dir, identity(cfg, split), net, on_run, on_step,
                         device)


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
        try:
            result, _ = train_run(spec, split, net, cfg.train, ckpt_dir, device=device,
                                  on_step=(lambda step, s=spec: on_step(s, step))
                                  if on_step else None)
        except TrainingDivergedError as err:
            # Recorded, not fatal: training is deterministic, so a rerun would diverge
            # again; the report lists it and pairs only runs that finished.
            result = RunResult(asdict(spec), math.nan, diverged=str(err))
        atomic_write_text(done, json.dumps(asdict(result), indent=1) + "\n")
        results.append(result)
    return results
