"""Checkpoints: written atomically, loaded with ``weights_only=True``, validated.

A checkpoint is a dict with ``format`` = :data:`FORMAT`, the run's identity (``run``) and
its state. Anything else (a torn file, another program's ``.pt``, a checkpoint of a
different run) is refused with :class:`CheckpointError`, never silently used.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from numeric.files import atomic_write_bytes

FORMAT = "vitconv.checkpoint/1"


class CheckpointError(ValueError):
    """A checkpoint that is corrupt, foreign, or belongs to another run."""


def save_checkpoint(path: Path, state: dict[str, Any]) -> Path:
    """Serialise ``state`` (plus the format tag) and write it atomically."""
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, **state}, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: Path, run: dict[str, Any]) -> dict[str, Any]:
    """Load and validate a checkpoint of ``run``.

    Raises:
        CheckpointError: unreadable/corrupt file, a file that is not a vitconv checkpoint,
            or a checkpoint written for a different run (arm, size, seed or settings).
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"checkpoint {path} is corrupt or unreadable "
                              f"({type(err).__name__}: {str(err)[:200]})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a vitconv checkpoint (format "
                              f"{state.get('format') if isinstance(state, dict) else None!r}, "
                              f"expected {FORMAT!r})")
    if state.get("run") != run:
        raise CheckpointError(f"{path} belongs to another run: {state.get('run')} != {run}; "
                              "delete it or choose another output folder")
    return state
