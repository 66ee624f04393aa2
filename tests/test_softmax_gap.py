"""Finite softmax gap: symbolic identities and the numeric bound (tight when adversarial)."""

import math

import pytest
import torch

from vitconv.numeric.evidence.gap import (
    adversarial_pointwise_image,
    adversarial_values,
    conv_gap,
    head_gap,
)
from vitconv.theory.softmax_gap import alpha_for_error, off_target_mass, prove_gap_bound


def test_symbolic_identities():
    proof = prove_gap_bound()
    assert proof.proved, proof.identities


@pytest.mark.parametrize("alpha", [0.5, 3.0, 12.0, 25.0])
def test_head_error_within_bound_and_tight(alpha):
    gen = torch.Generator().manual_seed(0)
    assert head_gap(torch.randn(20, 5, generator=gen, dtype=torch.float64), alpha).ratio <= 1
    assert 0.99 <= head_gap(adversarial_values(20, 5, 2.0, gen), alpha).ratio <= 1


def test_conv_gap_bound_holds_and_is_attained():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(2, 2, 3, padding=1).double()
    x = torch.randn(1, 2, 6, 6, dtype=torch.float64)
    for alpha in (1.0, 8.0, 20.0):
        assert conv_gap(conv, 2, alpha, x).ratio <= 1
    pointwise = torch.nn.Conv2d(2, 3, 1).double()
    image = adversarial_pointwise_image(pointwise, 4, (1, 2), channel=1)
    assert conv_gap(pointwise, 1, 4.0, image).ratio > 0.99


def test_alpha_for_error_meets_target():
    n, spread, eps = 49, 3.0, 1e-6
    alpha = alpha_for_error(eps, n, spread)
    assert off_target_mass(n, alpha) * spread <= eps * (1 + 1e-12)
    assert math.isclose(alpha, math.log((n - 1) * spread / eps))
    with pytest.raises(ValueError):
        alpha_for_error(0.0, n, spread)
