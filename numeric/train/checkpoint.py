"""Checkpoints: written atomically, loaded with ``weights_only=True``, validated.

A checkpoint is a dict with ``format`` = :data:`FORMAT`, the run's identity (``run``) and
its state. Anything else (a torn file, another program's ``.pt``, a checkpoint of a
different run) is refused with :class:`CheckpointError`, never silently used.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import torch

from vitconv.numeric.files import atomic_write_bytes

FORMAT = "vitconv.checkpoint/2"


class CheckpointError(ValueError):
    """A checkpoint that is corrupt, foreign, or belongs to another run."""


def save_checkpoint(path: Path, state: dict[str, Any]) -> Path:
    """Serialise ``state``, seal it with its SHA-256 and write it atomically.

    The file holds ``{"format", "sha256", "payload"}`` where ``payload`` is the serialised
    state as a byte tensor: ``torch.load`` does not check the zip CRC of tensor data, so
    flipped bytes inside a weight would otherwise load silently.
    """
    inner = io.BytesIO()
    torch.save(state, inner)
    payload = inner.getvalue()
    outer = io.BytesIO()
    torch.save({"format": FORMAT, "sha256": hashlib.sha256(payload).hexdigest(),
                "payload": torch.frombuffer(bytearray(payload), dtype=torch.uint8)}, outer)
    return atomic_write_bytes(path, outer.getvalue())


def _load(source: Path | io.BytesIO, what: str) -> Any:
    try:
        return torch.load(source, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"checkpoint {what} is corrupt or unreadable "
                              f"({type(err).__name__}: {str(err)[:200]})") from None


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The verified state of a checkpoint (format and digest checked), whatever its run.

    Raises:
        CheckpointError: unreadable, foreign, or not matching its digest.
    """
    outer = _load(path, str(path))
    if not isinstance(outer, dict) or outer.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a vitconv checkpoint (format "
                              f"{outer.get('format') if isinstance(outer, dict) else None!r}, "
                              f"expected {FORMAT!r})")
    payload = outer.get("payload")
    if not isinstance(payload, torch.Tensor) or payload.dtype != torch.uint8:
        raise CheckpointError(f"{path}: no sealed payload")
    data = payload.numpy().tobytes()
    if hashlib.sha256(data).hexdigest() != outer.get("sha256"):
        raise CheckpointError(f"{path} is corrupt: its content does not match its SHA-256 "
                              "digest (flipped bytes); delete it to start the run afresh")
    state = _load(io.BytesIO(data), f"{path} (payload)")
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: the payload is not a state dict")
    return state


def load_checkpoint(path: Path, run: dict[str, Any]) -> dict[str, Any]:
    """Load, verify (digest) and validate a checkpoint of ``run``.

    Raises:
        CheckpointError: unreadable/corrupt file, a digest that does not match its content,
            a file that is not a vitconv checkpoint, or a checkpoint written for a
            different run (arm, size, seed, settings or data).
    """
    state = read_checkpoint(path)
    if state.get("run") != run:
        raise CheckpointError(f"{path} belongs to another run: {state.get('run')} != {run}; "
                              "delete it or choose another output folder")
    return state
