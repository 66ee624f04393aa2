"""Files are written atomically: a temporary file in the same folder, then a rename.

A reader (or a resumed run) therefore sees either the old file or the complete new one,
never a torn write.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere: read by setting, and restore at once
    os.umask(mask)
    return mask


def replace_folder(staging: Path, target: Path) -> Path:
    """Put the complete folder ``staging`` at ``target``, replacing what was there.

    A reader sees the old folder, then the new one: never a mix of files from two runs.
    Concurrent writers each land a complete folder; the last one stays.
    """
    staging, target = Path(staging), Path(target)
    for _ in range(100):
        old = None
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}-{id(staging)}")
            try:
                os.replace(target, old)
            except FileNotFoundError:  # another writer moved it first
                old = None
        try:
            os.replace(staging, target)
        except OSError:  # another writer landed its folder in between: try again
            continue
        finally:
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        return target
    raise OSError(f"could not put {staging} at {target}: too many concurrent writers")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (creating parent folders); returns the path.

    The file gets the mode an ordinary ``open(path, "w")`` would give (``0666 & ~umask``),
    not ``mkstemp``'s private 0600: every output of the project has one mode.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


class FolderLockedError(RuntimeError):
    """Another process is writing the same run folder."""


@contextmanager
def exclusive(lock_file: str | os.PathLike, what: str) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``lock_file`` (created if needed) while the block
    runs; a second writer is refused at once with :class:`FolderLockedError` instead of
    racing the first for the same files. The lock dies with its process (SIGKILL too)."""
    path = Path(lock_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FolderLockedError(f"{what} is being written by another process (lock "
                                    f"{path}); wait for it or choose another --out") from None
        yield
    finally:
        os.close(fd)  # closing releases the lock
