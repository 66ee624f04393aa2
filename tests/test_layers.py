"""Imports flow one way: theory -> numeric -> proofs -> report (never back)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ["theory", "numeric", "proofs", "report"]
FORBIDDEN_IN_THEORY = {"torch", "numpy"}  # theory is exact: sympy, z3 and integers only


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("layer", LAYERS)
def test_no_upward_imports(layer):
    above = set(LAYERS[LAYERS.index(layer) + 1:])
    for path in (ROOT / layer).rglob("*.py"):
        bad = _imports(path) & above
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_theory_never_imports_torch():
    for path in (ROOT / "theory").rglob("*.py"):
        bad = _imports(path) & FORBIDDEN_IN_THEORY
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"
