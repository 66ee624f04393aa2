"""Which code produced a result: grids and checkpoints carry :func:`code_digest`, so results
of other code are refused, never mixed with new ones."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path


@cache
def code_digest() -> str:
    """SHA-256 of the source of ``vitconv.numeric`` and ``vitconv.theory`` (everything a
    training run's result depends on), file names included."""
    import vitconv.numeric
    import vitconv.theory

    h = hashlib.sha256()
    for package in (vitconv.numeric, vitconv.theory):
        root = Path(package.__file__).parent
        for path in sorted(root.rglob("*.py")):
            h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()
