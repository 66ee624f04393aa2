"""Nothing lost: atomic writes under a full disk, locked run folders, concurrent writers."""

import errno
import subprocess
import sys

import pytest

from vitconv.numeric import files
from vitconv.numeric.files import FolderLockedError, atomic_write_bytes, exclusive, replace_folder


def test_a_full_disk_leaves_the_old_file_whole(tmp_path, monkeypatch):
    target = tmp_path / "report.json"
    atomic_write_bytes(target, b"old and complete")

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", no_space)
    with pytest.raises(OSError, match="No space left"):
        atomic_write_bytes(target, b"new" * 1000)
    assert target.read_bytes() == b"old and complete"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]  # no temporary left


def test_the_lock_refuses_a_second_process(tmp_path):
    lock = tmp_path / "run.lock"
    with exclusive(lock, "the run"):
        code = ("import sys; from vitconv.numeric.files import exclusive, FolderLockedError\n"
                "try:\n    exclusive(sys.argv[1], 'the run').__enter__()\n"
                "except FolderLockedError as e:\n    print(e); sys.exit(3)\n")
        other = subprocess.run([sys.executable, "-c", code, str(lock)], capture_output=True,
                               text=True, check=False)
        assert other.returncode == 3 and "being written by another process" in other.stdout
    with exclusive(lock, "the run"):  # released with the first holder
        pass
    with pytest.raises(FolderLockedError), exclusive(lock, "x"), exclusive(lock, "x"):
        pass


def test_replace_folder_lands_whole_folders(tmp_path):
    target = tmp_path / "verify"
    for run in range(3):
        staging = tmp_path / f".staging-{run}"
        staging.mkdir()
        (staging / "report.json").write_text(str(run))
        (staging / "report.md").write_text(str(run))
        replace_folder(staging, target)
        assert {p.read_text() for p in target.iterdir()} == {str(run)}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["verify"]


def test_two_verify_runs_into_one_folder(tmp_path):
    """Both finish (exit 0) and the folder holds one complete report set."""
    cmd = [sys.executable, "-m", "vitconv.report.cli", "verify", "--quick", "--only",
           "offset_lemma", "--pdf", "no", "--out", str(tmp_path)]
    runs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            for _ in range(2)]
    errors = [p.communicate()[1] for p in runs]
    assert [p.returncode for p in runs] == [0, 0], errors
    names = sorted(p.name for p in (tmp_path / "verify").iterdir())
    assert names == ["appendix-body.tex", "appendix.tex", "figures", "report.json", "report.md"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
