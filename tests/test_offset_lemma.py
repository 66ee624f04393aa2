"""The offset lemma, three ways; each checker must also be able to fail."""

import sympy as sp

from theory import offset_lemma
from theory.certificates import Fact, InequalityProof, Step, check_step
from theory.smt import _floor_is, _refute, prove_offset_lemma


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


def test_statement_objects_are_sympy():
    assert isinstance(offset_lemma.LOWER, sp.floor)
    assert "lceil" in sp.latex(offset_lemma.COUNT_STRIDE_ONE)


def test_fact_is_plain_data():
    f = Fact("a", sp.Integer(1), "1 >= 0")
    assert f.expr == 1
