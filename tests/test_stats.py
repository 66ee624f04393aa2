"""Confidence intervals against hand-computed values."""

import math

import pytest

from vitconv.numeric.train.stats import mean_interval, paired_difference


def test_t_interval_matches_hand_computation():
    iv = mean_interval([1.0, 2.0, 3.0])
    # mean 2, sd 1, t_{0.975, 2} = 4.302653
    assert iv.mean == 2.0
    assert iv.high - iv.mean == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    assert not iv.excludes_zero or iv.low > 0


def test_paired_difference_and_single_value():
    iv = paired_difference([0.9, 0.8, 0.85], [0.7, 0.65, 0.72])
    assert iv.excludes_zero and iv.mean == pytest.approx(0.16)
    single = mean_interval([0.5])
    assert single.n == 1 and math.isnan(single.low) and "no interval" in str(single)
    with pytest.raises(ValueError, match="differ in length"):
        paired_difference([1.0], [1.0, 2.0])
