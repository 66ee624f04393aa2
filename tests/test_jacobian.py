"""The Jacobian lemma, its hypothesis, and equivariance without positions."""

import pytest
import torch

from vitconv.numeric.evidence.jacobian import check_lemma, check_rank, head_products, random_mhsa
from vitconv.theory.jacobian import (
    SymbolicMHSA,
    prove_jacobian_lemma,
    prove_permutation_equivariance,
    value_side_counterexample,
)


def test_symbolic_lemma():
    result = prove_jacobian_lemma(tokens=2, d_in=1, heads=2)
    assert result.proved and result.entries == 4


def test_value_side_embeddings_break_the_lemma():
    c = value_side_counterexample()
    assert c.difference[0] != 0
    assert float(c.difference[0]) > 0


def test_symbolic_jacobian_would_detect_a_wrong_lemma():
    mhsa = SymbolicMHSA(tokens=2, d_in=1, heads=1)
    wrong = 2 * mhsa.lemma_jacobian(0, 1)
    assert (mhsa.jacobian_at_zero(0, 1) - wrong)[0] != 0


def test_permutation_equivariance_without_positions_only():
    assert prove_permutation_equivariance(tokens=3, heads=1).proved
    positional = SymbolicMHSA(tokens=2, d_in=1, heads=1)  # with B[k - q]
    swapped = positional.x[[1, 0], :]
    assert (positional.output(0, swapped) - positional.output(1))[0] != 0


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_autograd_matches_lemma(dtype):
    gen = torch.Generator().manual_seed(3)
    att = random_mhsa(4, 3, 3, 2, 2, (3, 3), gen, dtype)
    for query in [(0, 0), (1, 1), (2, 1)]:
        assert check_lemma(att, (3, 3), query).passed


def test_lemma_check_can_fail():
    gen = torch.Generator().manual_seed(4)
    att = random_mhsa(2, 2, 2, 2, 2, (2, 2), gen)
    products = head_products(att)
    assert products[0].shape == (2, 2)
    with torch.no_grad():
        att.value.bias.mul_(1e6)  # huge value biases do not matter at 0 ...
    assert check_lemma(att, (2, 2), (0, 0)).passed
    original = att.forward

    def shifted(x, window=None):  # ... but a value-side offset per key does
        keys = torch.arange(x.shape[1] * x.shape[2], dtype=x.dtype).reshape(1, x.shape[1],
                                                                            x.shape[2], 1)
        return original(x + 1e-3 * keys * x.sum(), window)

    att.forward = shifted
    assert not check_lemma(att, (2, 2), (0, 0)).passed


def test_stacked_jacobian_rank_at_most_heads():
    gen = torch.Generator().manual_seed(5)
    att = random_mhsa(6, 4, 4, 3, 4, (4, 4), gen)
    r = check_rank(att, (4, 4), (1, 2))
    assert r.passed and r.sigma_h > 1e3 * r.tolerance
