"""The offset lemma, three ways; each checker must also be able to fail."""

import pytest
import sympy as sp

from vitconv.theory import offset_lemma
from vitconv.theory.certificates import InequalityProof, Step, check_step
from vitconv.theory.smt import _floor_is, _refute, prove_offset_lemma


def test_certificate_proofs_pass():
    for proof in offset_lemma.all_proofs():
        results = proof.check()
        assert all(r.ok for r in results), [(r.step.name, r.residual) for r in results]


def test_certificate_checker_rejects_a_missing_term():
    proof = offset_lemma.range_proof()
    steps = list(proof.steps)
    broken = steps[1]  # x + a >= 0
    steps[1] = Step(broken.name, broken.claim, broken.certificate[:-1], broken.text)
    results = InequalityProof(proof.name, proof.hypotheses, tuple(steps)).check()
    assert not results[1].ok


def test_certificate_checker_rejects_false_claim_and_negative_coefficient():
    x = sp.Symbol("x", integer=True)
    facts = {"x_ge_1": x - 1}
    assert check_step(Step("s", x - 1, ((1, ("x_ge_1",)),), ""), facts).ok
    assert not check_step(Step("s", x - 2, ((1, ("x_ge_1",)),), ""), facts).ok
    assert not check_step(Step("s", x, ((-1, ("x_ge_1",)),), ""), facts).ok
    assert not check_step(Step("s", x, ((1, ("unknown",)),), ""), facts).ok
    # by contradiction: x >= 1 refutes "x <= 0" (claim x - 1 >= 0) but not "x <= 4"
    refute = ((1, ("x_ge_1",)), (1, ("neg",)))
    assert check_step(Step("s", x - 1, refute, "", True), facts).ok
    assert not check_step(Step("s", x - 5, refute, "", True), facts).ok


def test_smt_proves_the_lemma_for_all_integers():
    results = prove_offset_lemma()
    assert all(r.proved for r in results), results


def test_smt_finds_counterexample_to_a_wrong_upper_end():
    import z3

    Q, s, a, b, u, t, m, hi = z3.Ints("Q s a b u t m hi")
    P = s * Q
    wrong = _refute("offsets <= floor(b/P)", [  # forgets the (P - stride) reach of u
        Q >= 1, s >= 1, a >= 0, b >= 0, _floor_is(hi, b, P),
        0 <= u, u <= Q - 1, -a <= t, t <= b, _floor_is(m, u * s + t, P), m > hi], 5000)
    assert wrong.answer == "sat" and wrong.counterexample


def test_brute_force_agrees():
    result = offset_lemma.brute_force(max_patch=4, max_span=8, max_dilation=3)
    assert result.mismatch is None
    assert result.dilated_strict > 0  # dilated kernels that skip patches do occur


def test_printed_formulas_golden():
    assert sp.latex(offset_lemma.LOWER) == r"\left\lfloor{- \frac{a}{P}}\right\rfloor"
    assert sp.latex(offset_lemma.COUNT_STRIDE_ONE) == (
        r"\left\lceil{\frac{a}{P}}\right\rceil + \left\lceil{\frac{b}{P}}\right\rceil + 1")


def test_definition_facts_come_from_the_formula():
    lower, upper = offset_lemma.definition_facts("lo", offset_lemma.lo, offset_lemma.LOWER, "")
    P = offset_lemma.P
    assert sp.expand(lower.expr - (-offset_lemma.a - offset_lemma.lo * P)) == 0
    assert sp.expand(upper.expr - (offset_lemma.lo * P + P - 1 + offset_lemma.a)) == 0


@pytest.mark.parametrize("name", ["UPPER", "LOWER", "COUNT_STRIDE_ONE"])
def test_a_wrong_printed_formula_fails_every_check(name, monkeypatch):
    """Printed = checked: change the printed object and the certificates, z3 and the brute
    force all reject it."""
    P, a, b = offset_lemma.P_sym, offset_lemma.a, offset_lemma.b
    wrong = {"UPPER": sp.floor((P + b) / P), "LOWER": sp.floor((1 - a) / P),
             "COUNT_STRIDE_ONE": sp.ceiling(a / P) + sp.ceiling((b + 1) / P) + 1}[name]
    monkeypatch.setattr(offset_lemma, name, wrong)
    assert not all(r.ok for p in offset_lemma.all_proofs() for r in p.check())
    assert not all(r.proved for r in prove_offset_lemma())
    assert offset_lemma.brute_force(max_patch=3, max_span=4, max_dilation=2).mismatch


def test_definition_facts_refuse_other_shapes():
    P, b = offset_lemma.P_sym, offset_lemma.b
    with pytest.raises(ValueError, match="must be \\+-floor"):
        offset_lemma.definition_facts("x", offset_lemma.hi, 2 * sp.floor(b / P), "")
    lower, upper = offset_lemma.definition_facts("y", offset_lemma.lo, -sp.floor(b / P), "")
    assert lower.expr != upper.expr  # a coefficient of -1 is allowed
