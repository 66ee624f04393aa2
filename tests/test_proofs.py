"""Theorem objects, the registry and the checker: failures are never hidden."""

import pytest

from vitconv.proofs import CheckContext, Evidence, Obligation, Registry, Theorem, default_registry
from vitconv.proofs.checker import run_checks


def _theorem(check, theorem_id="toy") -> Theorem:
    return Theorem(theorem_id, "lemma", "Toy", "0", ("none",), "s", "p",
                   (Obligation(f"{theorem_id}.only", "t", "numeric", check),), family="toys")


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
                (Obligation("toy.x", "t", "smt", ok),), family="toys")
    with pytest.raises(ValueError, match="no obligations"):
        Theorem("toy", "lemma", "T", "0", (), "s", "p", ())
    with pytest.raises(ValueError, match="registered twice"):
        Registry([_theorem(ok), _theorem(ok)])
    with pytest.raises(ValueError, match="name the family"):
        Theorem("toy", "lemma", "T", "0", (), "s", "p", (Obligation("toy.x", "t", "smt", ok),))


def test_nothing_sampled_can_be_labelled_proved():
    ok = lambda ctx: Evidence(True, "1")  # noqa: E731
    for method in ("property", "numeric", "training", "exhaustive"):
        with pytest.raises(ValueError, match="cannot have scope 'all'"):
            Obligation("toy.x", "t", method, ok, scope="all")
    with pytest.raises(ValueError, match="not an obligation of scope 'all'"):
        Theorem("toy", "lemma", "T", "0", (), "s", "p", (Obligation("toy.x", "t", "smt", ok),),
                proved_by=("x",))
    with pytest.raises(ValueError, match="no refutation obligation"):
        Theorem("toy", "conjecture", "T", "0", (), "s", "p",
                (Obligation("toy.x", "t", "smt", ok),), refuted=True)


def _verdict_of(*obligations, **kwargs) -> str:
    theorem = Theorem("toy", "lemma", "T", "0", (), "s", "p", obligations, **kwargs)
    return run_checks([theorem], CheckContext(quick=True)).theorems[0]


@pytest.mark.parametrize(("passes", "verdict"), [(True, "proved"), (False, "failed")])
def test_verdict_proved_needs_every_proof_obligation(passes, verdict):
    ok = lambda ctx: Evidence(True, "1", examples=5)  # noqa: E731
    result = _verdict_of(Obligation("toy.z3", "t", "smt", lambda ctx: Evidence(passes, "1"),
                                    scope="all"),
                         Obligation("toy.sample", "t", "numeric", ok),
                         proved_by=("z3",), family="toys")
    assert result.verdict == verdict


def test_verdict_counts_instances_and_names_the_family():
    ok = lambda ctx: Evidence(True, "1", examples=7)  # noqa: E731
    result = _verdict_of(Obligation("toy.a", "t", "numeric", ok),
                         Obligation("toy.b", "t", "property", ok), family="small toys")
    assert result.verdict == "verified"
    assert result.status_text == "verified on 14 instances (small toys)"


def test_verdict_refuted_shows_the_counterexample():
    refutation = Obligation("toy.cx", "t", "symbolic",
                            lambda ctx: Evidence(True, "1", counterexample="K=3: rho 1"),
                            scope="refutation")
    result = _verdict_of(refutation, refuted=True)
    assert result.verdict == "refuted" and "K=3: rho 1" in result.status_text


def test_registry_labels_statements_honestly():
    """The project's own statements: what is declared proved, and by what."""
    proved = {t.id: t.proved_by for t in default_registry() if t.proved_by}
    assert proved == {"offset_lemma": ("certificates", "smt"),
                      "construction": ("index_arithmetic",),
                      "pixel_vs_patch": ("patch_rank", "pixel_rank")}
    assert [t.id for t in default_registry() if t.refuted] == ["unified_formula"]


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


def test_a_corollary_of_a_verified_theorem_is_not_proved():
    ok = lambda ctx: Evidence(True, "1", examples=3)  # noqa: E731
    base = Theorem("base", "theorem", "B", "0", (), "s", "p",
                   (Obligation("base.x", "t", "numeric", ok),), family="toys")
    corollary = Theorem("cor", "corollary", "C", "0", (), "s", "p",
                        (Obligation("cor.z3", "t", "smt", ok, scope="all"),),
                        proved_by=("z3",), depends_on=("base",), family="toys")
    record = run_checks([base, corollary], CheckContext(quick=True))
    result = record.theorems[1]
    assert result.verdict == "verified" and "relies on base (not proved)" in result.status_text
    alone = run_checks([corollary], CheckContext(quick=True)).theorems[0]
    assert alone.verdict == "verified"  # a dependency that did not run proves nothing
