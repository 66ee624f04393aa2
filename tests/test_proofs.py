"""Theorem objects, the registry and the checker: failures are never hidden."""

import pytest

from proofs import CheckContext, Evidence, Obligation, Registry, Theorem, default_registry
from proofs.checker import run_checks


def _theorem(check, theorem_id="toy") -> Theorem:
    return Theorem(theorem_id, "lemma", "Toy", "0", ("none",), "s", "p",
                   (Obligation(f"{theorem_id}.only", "t", "numeric", check),))


def test_default_registry_ids_are_stable_and_unique():
    registry = default_registry()
    ids = registry.obligation_ids()
    assert len(ids) == len(set(ids))
    assert "offset_lemma.smt" in ids and "construction.property" in ids


def test_registry_lookup_raises_with_known_ids():
    with pytest.raises(KeyError, match="known: offset_lemma"):
        default_registry().get("offset_lemma_typo")
    with pytest.raises(KeyError, match="neither a theorem nor an obligation"):
        default_registry().select(["nope"])


def test_select_by_obligation_id():
    theorems, wanted = default_registry().select(["construction.named_cases"])
    assert [t.id for t in theorems] == ["construction"] and wanted == {"construction.named_cases"}


def test_theorem_validation():
    ok = lambda ctx: Evidence(True, "1")  # noqa: E731
    with pytest.raises(ValueError, match=r"must start with toy\."):
        Theorem("toy", "lemma", "T", "0", (), "s", "p", (Obligation("other.x", "t", "smt", ok),))
    with pytest.raises(ValueError, match="undefined formulas"):
        Theorem("toy", "lemma", "T", "0", (), "<<missing>>", "p",
                (Obligation("toy.x", "t", "smt", ok),))
    with pytest.raises(ValueError, match="no obligations"):
        Theorem("toy", "lemma", "T", "0", (), "s", "p", ())
    with pytest.raises(ValueError, match="registered twice"):
        Registry([_theorem(ok), _theorem(ok)])


@pytest.mark.parametrize(("check", "status"), [
    (lambda ctx: Evidence(True, "1 thing"), "passed"),
    (lambda ctx: Evidence(False, "1 thing", counterexample="x = 3"), "failed"),
    (lambda ctx: 1 / 0, "error"),
    (lambda ctx: "not evidence", "error"),
])
def test_checker_statuses(check, status):
    record = run_checks([_theorem(check)], CheckContext(quick=True))
    result = record.obligations[0]
    assert result.status == status
    assert record.passed is (status == "passed")
    assert record.theorems[0].checked is (status == "passed")
    if status == "error":
        assert result.error


def test_versions_are_recorded():
    record = run_checks([_theorem(lambda ctx: Evidence(True, "1"))], CheckContext())
    for key in ("python", "torch", "sympy", "z3-solver", "device"):
        assert key in record.versions
