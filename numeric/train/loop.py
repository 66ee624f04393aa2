"""One training run of one arm: deterministic, resumable, DDP-ready.

Every arm of a seed sees the same batches and the same augmentation (one generator seeded
by the run's seed), the same optimiser (AdamW, warm-up then cosine decay) and the same step
budget; the two-phase arm spends ``phase1_fraction`` of it in phase 1, converts with
``vitconv.numeric.train.models.convert`` (softmax gap ``alpha``) and continues with a fresh
optimiser on the same schedule. A checkpoint is written atomically every
``checkpoint_every`` steps; a run restarted with the same settings resumes from it and ends
with the same weights as an uninterrupted run. A non-finite loss stops the run with
:class:`TrainingDivergedError`, keeping the last good checkpoint.

Under ``torchrun`` (``torch.distributed`` initialised) each process takes its share of every
global batch and DistributedDataParallel averages the gradients, so the weights follow the
single-process run with the same global batch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from vitconv.numeric.files import exclusive
from vitconv.numeric.train.checkpoint import load_checkpoint, save_checkpoint
from vitconv.numeric.train.data import Split, nested_subsets
from vitconv.numeric.train.models import ARMS, NetConfig, build, convert, phase2_net
from vitconv.numeric.train.provenance import code_digest


@dataclass(frozen=True)
class TrainConfig:
    """The optimisation protocol, identical for every arm."""

    steps: int = 600
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup: int = 30
    phase1_fraction: float = 0.5  # two-phase: share of the step budget spent in phase 1
    alpha: float = 8.0            # softmax gap at conversion (ablated in the experiment)
    shift: int = 2                # augmentation: random translation by up to 2 pixels
    eval_every: int = 100         # test accuracy along the way, for time-to-accuracy
    eval_images: int = 1000       # ... on the first this many test images (the final: all)
    checkpoint_every: int = 100
    dtype: str = "float32"        # float64 for exactness tests (DDP against one process)

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.eval_images < 1:
            raise ValueError("steps, batch_size and eval_images must be >= 1")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype={self.dtype!r} must be 'float32' or 'float64'")
        if not 0 < self.phase1_fraction < 1:
            raise ValueError(f"phase1_fraction={self.phase1_fraction} must lie in (0, 1)")


@dataclass(frozen=True)
class RunSpec:
    """Which run: arm, training-set size, seed, and the gap (``None``: the config's)."""

    arm: str
    size: int
    seed: int
    alpha: float | None = None

    def __post_init__(self) -> None:
        if self.arm not in ARMS:
            raise ValueError(f"unknown arm {self.arm!r}; arms: {', '.join(ARMS)}")

    @property
    def id(self) -> str:
        gap = "" if self.alpha is None else f"-alpha{self.alpha:g}"
        return f"{self.arm}{gap}-n{self.size}-s{self.seed}"


@dataclass
class RunResult:
    """What a run produced: final accuracy on the whole test set; the curve
    ``[step, training seconds, accuracy]`` on the first ``eval_images`` test images (its
    last point at the end of training), throughput, and (two-phase) the accuracy on those
    images right before and after conversion."""

    spec: dict
    accuracy: float
    history: list = field(default_factory=list)       # [step, train seconds, accuracy]
    train_seconds: float = 0.0
    images_per_second: float = 0.0
    before_conversion: float | None = None
    after_conversion: float | None = None
    diverged: str | None = None   # why the run stopped (non-finite loss); accuracy is nan


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite."""


def _distributed() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _lr(cfg: TrainConfig, step: int) -> float:
    warm = min(1.0, (step + 1) / cfg.warmup) if cfg.warmup else 1.0
    return cfg.lr * warm * 0.5 * (1 + math.cos(math.pi * step / cfg.steps))


def _optimiser(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    decay = [p for p in model.parameters() if p.ndim >= 2]
    rest = [p for p in model.parameters() if p.ndim < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": rest, "weight_decay": 0.0}], lr=cfg.lr)


def _tensors(split: Split, size: int, seed: int) -> tuple[torch.Tensor, ...]:
    """Normalised float tensors: the nested training subset and the test set."""
    order = nested_subsets(split.train_labels, seed)
    if size > len(order):
        raise ValueError(f"size={size} exceeds the {len(order)} training images of "
                         f"{split.name}")
    pick = order[:size]
    train = split.train_images[pick].astype(np.float32) / 255
    mean = train.mean(axis=(0, 2, 3), keepdims=True)
    std = train.std(axis=(0, 2, 3), keepdims=True) + 1e-6
    test = (split.test_images.astype(np.float32) / 255 - mean) / std
    return (torch.from_numpy((train - mean) / std), torch.from_numpy(split.train_labels[pick]),
            torch.from_numpy(test), torch.from_numpy(split.test_labels))


def _batch(x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig, gen: torch.Generator
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """A global batch with random translations (zero fill), drawn from ``gen`` only."""
    idx = torch.randint(0, len(y), (cfg.batch_size,), generator=gen).to(y.device)
    shifts = torch.randint(-cfg.shift, cfg.shift + 1, (cfg.batch_size, 2), generator=gen)
    s = cfg.shift
    padded = F.pad(x[idx], (s, s, s, s))
    H, W = x.shape[-2:]
    out = torch.stack([padded[i, :, s + dy: s + dy + H, s + dx: s + dx + W]
                       for i, (dy, dx) in enumerate(shifts.tolist())])
    return out, y[idx]


@torch.no_grad()
def correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 500
            ) -> torch.Tensor:
    """``(len(y),)`` bool: which images of ``x`` the model (in eval mode) classifies right."""
    model.eval()
    right = torch.cat([model(x[i:i + batch]).argmax(1) == y[i:i + batch]
                       for i in range(0, len(y), batch)])
    model.train()
    return right


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 500) -> float:
    """Fraction of ``x`` classified correctly."""
    return float(correct(model, x, y, batch).double().mean())


def train_run(spec: RunSpec, split: Split, net: NetConfig, cfg: TrainConfig, workdir: Path,
              *, on_step: Callable[[int], None] | None = None,
              device: str | torch.device = "cpu") -> tuple[RunResult, nn.Module]:
    """Train one arm from scratch or from its checkpoint in ``workdir``; see module doc.

    ``device`` holds the model and data (batches and augmentation are drawn on the CPU,
    so a seed gives the same batches everywhere). The run's files are locked while it
    trains (by the process that writes them, rank 0).

    Returns:
        The run's result and the trained network.

    Raises:
        TrainingDivergedError: non-finite loss (the last good checkpoint is kept).
        CheckpointError: a checkpoint in ``workdir`` that is corrupt or of another run.
        FolderLockedError: another process is training the same run into ``workdir``.
    """
    rank, _ = _distributed()
    lock = (exclusive(Path(workdir) / f"{spec.id}.lock", f"run {spec.id} in {workdir}")
            if rank == 0 else nullcontext())
    with lock:
        return _train_run(spec, split, net, cfg, workdir, on_step, device)


def _train_run(spec: RunSpec, split: Split, net: NetConfig, cfg: TrainConfig, workdir: Path,
               on_step: Callable[[int], None] | None,
               device: str | torch.device) -> tuple[RunResult, nn.Module]:
    split.check_patch_size(net.patch_size)
    rank, world = _distributed()
    if cfg.batch_size % world:
        raise ValueError(f"batch_size={cfg.batch_size} must divide among {world} processes")
    alpha = cfg.alpha if spec.alpha is None else spec.alpha
    identity = {"spec": asdict(spec), "net": asdict(net), "train": asdict(cfg),
                "data": {"name": split.name, "sha256": split.digest}, "code": code_digest()}
    path = Path(workdir) / f"{spec.id}.ckpt"
    dtype = getattr(torch, cfg.dtype)
    x, y, x_test, y_test = _tensors(split, spec.size, spec.seed)
    x, y = x.to(device=device, dtype=dtype), y.to(device)
    x_test, y_test = x_test.to(device=device, dtype=dtype), y_test.to(device)
    x_eval, y_eval = x_test[:cfg.eval_images], y_test[:cfg.eval_images]
    switch = int(cfg.phase1_fraction * cfg.steps) if spec.arm == "two_phase" else None

    torch.manual_seed(spec.seed)
    model = build(spec.arm, net).to(device=device, dtype=dtype)
    gen = torch.Generator().manual_seed(spec.seed + 1_000_003)
    result = RunResult(asdict(spec), math.nan)
    start_step, phase = 0, 1
    if path.exists():
        state = load_checkpoint(path, identity)
        phase = state["phase"]
        if phase == 2:
            model = phase2_net(net).to(device=device, dtype=dtype)
        model.load_state_dict(state["model"])
        gen.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        start_step = state["step"]
        result = RunResult(**state["result"])
    optimiser = _optimiser(model, cfg)
    if path.exists():
        optimiser.load_state_dict(state["optimizer"])
    trainer = _wrap(model, world)

    def checkpoint(step: int) -> None:
        if rank == 0:
            save_checkpoint(path, {"run": identity, "step": step, "phase": phase,
                                   "model": model.state_dict(),
                                   "optimizer": optimiser.state_dict(),
                                   "generator": gen.get_state(),
                                   "torch_rng": torch.get_rng_state(),
                                   "result": asdict(result)})

    for step in range(start_step, cfg.steps):
        if step == switch and phase == 1:
            result.before_conversion = accuracy(model, x_eval, y_eval)
            model, phase = convert(model, alpha), 2
            optimiser, trainer = _optimiser(model, cfg), _wrap(model, world)
            result.after_conversion = accuracy(model, x_eval, y_eval)
        tic = time.perf_counter()
        images, labels = _batch(x, y, cfg, gen)
        share = slice(rank * cfg.batch_size // world, (rank + 1) * cfg.batch_size // world)
        for group in optimiser.param_groups:
            group["lr"] = _lr(cfg, step)
        loss = F.cross_entropy(trainer(images[share]), labels[share])
        if not torch.isfinite(loss):
            raise TrainingDivergedError(
                f"{spec.id}: loss is {float(loss.detach())} at step {step} (phase {phase}); "
                f"the last good checkpoint {path} is kept"
                + ("" if path.exists() else " (none yet)"))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        result.train_seconds += time.perf_counter() - tic
        done = step + 1
        if cfg.eval_every and done % cfg.eval_every == 0 and done < cfg.steps and rank == 0:
            result.history.append([done, result.train_seconds, accuracy(model, x_eval, y_eval)])
        if cfg.checkpoint_every and done % cfg.checkpoint_every == 0 and done < cfg.steps:
            checkpoint(done)
        if on_step is not None:
            on_step(done)
    right = correct(model, x_test, y_test).double()
    result.accuracy = float(right.mean())
    result.history.append([cfg.steps, result.train_seconds, float(right[:len(y_eval)].mean())])
    result.images_per_second = cfg.steps * cfg.batch_size / max(result.train_seconds, 1e-9)
    checkpoint(cfg.steps)
    return result, model


def _wrap(model: nn.Module, world: int) -> nn.Module:
    if world == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[model.head.weight.device]
                                   if model.head.weight.is_cuda else None)
