"""Training engineering: determinism, resume after a kill, checkpoint errors, NaN, DDP."""

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from vitconv.numeric.files import FolderLockedError, exclusive
from vitconv.numeric.train.checkpoint import CheckpointError, read_checkpoint
from vitconv.numeric.train.data import mnist_split
from vitconv.numeric.train.loop import RunSpec, TrainConfig, TrainingDivergedError, train_run
from vitconv.numeric.train.models import NetConfig

NET = NetConfig(channels=4, depth=1)
TINY = TrainConfig(steps=8, batch_size=16, eval_every=4, checkpoint_every=2, warmup=2)
CLI = [sys.executable, "-m", "vitconv.report.cli", "train", "--quick", "--arm", "two_phase",
       "--size", "250"]


@pytest.fixture(scope="module")
def split():
    return mnist_split()


def _weights(model: torch.nn.Module) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_deterministic_on_cpu(split, tmp_path):
    spec = RunSpec("two_phase", 250, 7)
    a, model_a = train_run(spec, split, NET, TINY, tmp_path / "a")
    b, model_b = train_run(spec, split, NET, TINY, tmp_path / "b")
    assert a.accuracy == b.accuracy and a.after_conversion == b.after_conversion
    wa, wb = _weights(model_a), _weights(model_b)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def _final_state(folder: Path) -> dict:
    return read_checkpoint(folder / "train" / "two_phase-n250-s0.ckpt")


def test_killed_run_resumes_to_the_same_weights(tmp_path):
    args = ["--steps", "60", "--checkpoint-every", "5"]
    killed = subprocess.Popen([*CLI, *args, "--out", str(tmp_path / "killed")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = tmp_path / "killed" / "train" / "two_phase-n250-s0.ckpt"
    deadline = time.time() + 120
    while time.time() < deadline and killed.poll() is None:
        if ckpt.exists() and read_checkpoint(ckpt)["step"] >= 15:
            break
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    stopped_at = read_checkpoint(ckpt)["step"]
    assert 15 <= stopped_at < 60
    subprocess.run([*CLI, *args, "--out", str(tmp_path / "killed")], check=True,
                   capture_output=True)
    subprocess.run([*CLI, *args, "--out", str(tmp_path / "straight")], check=True,
                   capture_output=True)
    resumed, straight = _final_state(tmp_path / "killed"), _final_state(tmp_path / "straight")
    assert resumed["step"] == straight["step"] == 60 and resumed["phase"] == 2
    assert all(torch.equal(resumed["model"][k], straight["model"][k]) for k in straight["model"])


def test_corrupt_foreign_and_other_checkpoints_are_refused(split, tmp_path):
    spec = RunSpec("phase1_only", 250, 0)
    train_run(spec, split, NET, TINY, tmp_path)
    path = tmp_path / f"{spec.id}.ckpt"
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(path, other / "phase1_only-n250-s1.ckpt")
    with pytest.raises(CheckpointError, match="belongs to another run"):
        train_run(RunSpec("phase1_only", 250, 1), split, NET, TINY, other)
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(CheckpointError, match="is not a vitconv checkpoint"):
        train_run(spec, split, NET, TINY, tmp_path)
    path.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(CheckpointError, match="corrupt or unreadable"):
        train_run(spec, split, NET, TINY, tmp_path)


def test_flipped_bytes_inside_a_weight_are_caught(split, tmp_path):
    """torch.load does not check tensor data: the sealed digest does."""
    spec = RunSpec("phase1_only", 250, 0)
    train_run(spec, split, NET, TINY, tmp_path)
    path = tmp_path / f"{spec.id}.ckpt"
    blob = bytearray(path.read_bytes())
    middle = len(blob) // 2  # inside the payload's tensor data
    for i in range(10):
        blob[middle + i] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match="does not match its SHA-256 digest"):
        train_run(spec, split, NET, TINY, tmp_path)


def test_a_second_writer_of_the_same_run_is_refused(split, tmp_path):
    spec = RunSpec("phase1_only", 250, 0)
    with exclusive(tmp_path / f"{spec.id}.lock", "held by this test"), \
            pytest.raises(FolderLockedError, match="being written by another process"):
        train_run(spec, split, NET, TINY, tmp_path)
    train_run(spec, split, NET, TINY, tmp_path)  # free again once the first lets go


def test_runs_are_keyed_by_data_content_not_name(split, tmp_path):
    """Same name, other content: the checkpoint of the first is refused for the second."""
    import dataclasses

    spec = RunSpec("phase1_only", 250, 0)
    train_run(spec, split, NET, dataclasses.replace(TINY, steps=4), tmp_path)  # unfinished
    other = dataclasses.replace(split, test_labels=split.test_labels[::-1].copy())
    assert other.name == split.name and other.digest != split.digest
    with pytest.raises(CheckpointError, match="belongs to another run"):
        train_run(spec, other, NET, dataclasses.replace(TINY, steps=4), tmp_path)


def test_network_weights_do_not_depend_on_what_ran_before(split, tmp_path):
    """No helper consumes the global RNG: a restarted process builds the same network."""
    from vitconv.numeric.train.models import phase2_net, value_widths

    torch.manual_seed(3)
    first = _weights(phase2_net(NET))
    value_widths(NetConfig(channels=2, depth=1, kernel_size=3))  # a helper, other shapes
    torch.manual_seed(3)
    second = _weights(phase2_net(NET))
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(split, tmp_path):
    exploding = TrainConfig(steps=50, batch_size=16, lr=1e12, warmup=1, checkpoint_every=1,
                            eval_every=0)
    with pytest.raises(TrainingDivergedError, match=r"loss is (nan|inf) at step \d+ .*is kept"):
        train_run(RunSpec("vit", 250, 0), split, NET, exploding, tmp_path)
    state = read_checkpoint(tmp_path / "vit-n250-s0.ckpt")
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_two_processes_reach_the_weights_of_one(tmp_path):
    """DDP (gloo, 2 CPU processes, global batch 64) against one process, in float64.

    The two runs differ only in how the mean gradient is summed (two halves all-reduced
    vs one batch), a rounding-level difference: below 1e-13 per step here (float64
    u = 1.1e-16, at most ~1,000 summed terms, per-sample gradients below 1). AdamW turns a
    gradient difference d into an update difference of at most lr * d / eps per step, so
    after `steps` steps the weights differ by at most steps * lr * 1e-13 / eps.
    """
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    if torchrun is None:
        pytest.skip("torchrun is not installed")
    args = ["--steps", "12", "--dtype", "float64"]
    subprocess.run([torchrun, "--standalone", "--nproc_per_node=2", "-m", "vitconv.report.cli",
                    *CLI[3:], *args, "--out", str(tmp_path / "ddp")], check=True,
                   capture_output=True)
    subprocess.run([*CLI, *args, "--out", str(tmp_path / "one")], check=True,
                   capture_output=True)
    ddp, one = _final_state(tmp_path / "ddp")["model"], _final_state(tmp_path / "one")["model"]
    cfg = TrainConfig()
    tolerance = 12 * cfg.lr * 1e-13 / 1e-8
    diff = max(float((ddp[k] - one[k]).abs().max()) for k in one if one[k].is_floating_point())
    assert diff <= tolerance
