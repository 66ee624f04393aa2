"""Approximation floor: the floor curve, the exact small-signal error, a short training."""

from itertools import pairwise

import torch

from numeric import as_attention
from numeric.floor import (
    floor_curve,
    nonnegative_rank_one_error,
    small_signal_error,
    train_imitator,
)
from proofs.theorems.approximation_floor import imitation_target


def test_floor_curve_is_decreasing_to_zero_at_rho():
    conv = imitation_target(0)
    floors = floor_curve(conv, 2)
    assert floors[0] == 1.0 and floors[-1] == 0.0
    assert all(a >= b for a, b in pairwise(floors))
    assert nonnegative_rank_one_error(conv, 2) >= floors[1]


def test_exact_construction_has_zero_small_signal_error():
    conv = imitation_target(0)
    attn = as_attention(conv, 2)
    assert small_signal_error(attn, conv, 5) < 1e-28


def test_short_training_stays_above_floor():
    conv = imitation_target(1)
    result = train_imitator(conv, 2, 2, steps=30)
    assert result.small_signal_error >= result.floor
    assert result.final_loss == result.final_loss  # finite, not NaN


def test_floor_is_attained_direction():
    """A rank-H truncation of the conv's blocks reaches the floor exactly (sanity of the
    Eckart-Young side): build N = best rank-1 approximation and measure its error."""
    from numeric.floor import span_matrix

    conv = imitation_target(2)
    _, Mat = span_matrix(conv, 2)
    U, S, Vh = torch.linalg.svd(Mat, full_matrices=False)
    best = S[0] * torch.outer(U[:, 0], Vh[0])
    error = float(((Mat - best) ** 2).sum() / (Mat**2).sum())
    assert abs(error - floor_curve(conv, 2)[1]) < 1e-12
