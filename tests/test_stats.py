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


def test_detectable_difference_has_the_stated_power():
    """At the returned difference the paired t-test rejects with probability 0.8 (checked
    against scipy's noncentral t, independently of the integral used inside)."""
    import math

    from scipy import stats

    from vitconv.numeric.train.stats import detectable_difference

    values = [0.012, 0.031, -0.004, 0.02, 0.008]
    n, sd = len(values), stats.tstd(values)
    delta = detectable_difference(values)
    crit, nc = stats.t.ppf(0.975, n - 1), delta * math.sqrt(n) / sd
    assert stats.nct.sf(crit, n - 1, nc) + stats.nct.cdf(-crit, n - 1, nc) == pytest.approx(
        0.8, abs=1e-6)
    assert detectable_difference([2 * v for v in values]) == pytest.approx(2 * delta)
    assert detectable_difference(values[:3]) > delta  # fewer seeds detect less
    assert math.isnan(detectable_difference([0.1]))
    assert detectable_difference([0.25, 0.25, 0.25]) == 0.0
    assert detectable_difference([1.0, 2.0]) == pytest.approx(8.167, abs=1e-3)  # df = 1


def test_verdict_reads_the_interval():
    from vitconv.numeric.train.stats import Interval, verdict

    assert verdict(Interval(0.02, 0.01, 0.03, 5)) == "supported"
    assert verdict(Interval(-0.02, -0.03, -0.01, 5)) == "refuted"
    assert verdict(Interval(0.02, -0.01, 0.05, 5)) == "undecided"
    assert verdict(Interval(0.5, float("nan"), float("nan"), 1)) == "undecided"
