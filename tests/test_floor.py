"""Approximation floor: the floor curve, the exact small-signal error, a short training."""

import math
from itertools import pairwise

import torch

from vitconv.numeric import as_attention
from vitconv.numeric.evidence.floor import (
    floor_curve,
    nonnegative_rank_one_error,
    small_signal_error,
    train_imitator,
)
from vitconv.proofs.theorems.approximation_floor import imitation_target


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


def test_training_learns_and_stays_above_floor():
    conv = imitation_target(1)
    trained = train_imitator(conv, 2, 1, steps=150, lr=0.1, restarts=2)
    untrained = train_imitator(conv, 2, 1, steps=150, lr=0.0)
    assert math.isfinite(trained.final_loss)
    assert trained.floor <= trained.small_signal_error < 0.75 * untrained.small_signal_error


def test_floor_matches_an_independent_rank_one_fit():
    """floor(1) against the best rank-one fit found without any SVD: power iteration on
    Mat^T Mat (alternating least squares for a b^T), error 1 - |Mat v|^2 / |Mat|^2."""
    from vitconv.numeric.evidence.floor import span_matrix

    conv = imitation_target(2)
    _, Mat = span_matrix(conv, 2)
    v = torch.ones(Mat.shape[1], dtype=torch.float64)
    for _ in range(2000):
        v = Mat.T @ (Mat @ v)
        v = v / v.norm()
    error = 1 - float((Mat @ v).norm() ** 2 / (Mat**2).sum())
    assert abs(error - floor_curve(conv, 2)[1]) < 1e-9
