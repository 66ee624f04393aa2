"""The mutation catalogue stays applicable: every snippet occurs exactly once (``make mutants``
runs the mutants themselves)."""

from pathlib import Path

import pytest

from tests.mutants.catalogue import CATALOGUE, Mutant
from tests.mutants.gate import ROOT, apply


@pytest.mark.parametrize("mutant", CATALOGUE, ids=lambda m: m.name)
def test_every_snippet_occurs_exactly_once(mutant):
    assert (ROOT / mutant.path).read_text().count(mutant.old) == 1
    assert mutant.new != mutant.old


def test_names_are_unique_and_the_catalogue_is_large_enough():
    names = [m.name for m in CATALOGUE]
    assert len(names) == len(set(names)) and len(names) >= 20
    assert {m.path.split("/")[0] for m in CATALOGUE} == {"theory", "numeric"}


def test_a_stale_snippet_is_an_error(tmp_path):
    (tmp_path / "theory").mkdir()
    Path(tmp_path / "theory" / "x.py").write_text("a = 1\n")
    with pytest.raises(ValueError, match="occurs 0 times"):
        apply(Mutant("stale", "theory/x.py", "b = 2", "b = 3", "gone"), tmp_path)


def test_the_gate_notices_when_its_copy_would_not_run(tmp_path):
    """Without the checkout marker the installed tree answers imports instead of the copy,
    and every mutant would survive; the gate must say so (it happened once)."""
    import os
    import shutil

    from tests.mutants.gate import PACKAGES, ROOT, _imported_from_elsewhere

    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    assert _imported_from_elsewhere(tmp_path, env) is not None  # no pyproject.toml: stray
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    assert _imported_from_elsewhere(tmp_path, env) is None
