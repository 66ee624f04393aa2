"""Means and paired differences with 95% confidence intervals (Student's t)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import integrate, optimize, stats


@dataclass(frozen=True)
class Interval:
    """Mean of ``n`` values and its two-sided 95% t-interval (``nan`` bounds for ``n < 2``)."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def __str__(self) -> str:
        if self.n < 2:
            return f"{self.mean:+.4f} (n={self.n}, no interval)"
        return f"{self.mean:+.4f} [{self.low:+.4f}, {self.high:+.4f}]"


def mean_interval(values: Sequence[float], level: float = 0.95) -> Interval:
    """``mean +- t_{n-1} s / sqrt(n)``."""
    n = len(values)
    if n == 0:
        raise ValueError("no values")
    mean = sum(values) / n
    if n < 2:
        return Interval(mean, math.nan, math.nan, n)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = stats.t.ppf(0.5 + level / 2, n - 1) * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n)


def paired_difference(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> Interval:
    """Interval for ``mean(a - b)`` over pairs (same seed and training subset)."""
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} vs {len(b)}")
    return mean_interval([x - y for x, y in zip(a, b, strict=True)], level)


def detectable_difference(values: Sequence[float], level: float = 0.95,
                          power: float = 0.8) -> float:
    """The smallest true mean of ``values`` (paired differences) that a two-sided paired
    t-test at ``level`` detects with probability ``power``, if the differences spread as
    much as these do: the solution of
    ``P(|T'| > t_{1-a/2, n-1}) = power``, ``T' ~ t_{n-1}(delta sqrt(n) / s)``.
    ``nan`` for fewer than 2 values; ``0`` if they do not spread at all."""
    n = len(values)
    if n < 2:
        return math.nan
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    if sd == 0:
        return 0.0
    df, crit = n - 1, stats.t.ppf(0.5 + level / 2, n - 1)

    def shortfall(delta: float) -> float:
        # P(|T'| > crit) = E over the variance estimate V ~ chi2(df) of the normal tails,
        # integrated over u = F_chi2(V) in (0, 1) where the integrand is smooth and bounded
        # (scipy's nct.sf/cdf return nan at some large noncentralities).
        nc = delta * math.sqrt(n) / sd

        def rejects(u: float) -> float:
            c = crit * math.sqrt(stats.chi2.ppf(u, df) / df)
            return stats.norm.sf(c - nc) + stats.norm.cdf(-c - nc)

        return integrate.quad(rejects, 0, 1, limit=200)[0] - power

    high = sd
    while shortfall(high) < 0:
        high *= 2
    return float(optimize.brentq(shortfall, 0.0, high, xtol=1e-12 * sd))


def verdict(difference: Interval) -> str:
    """``supported`` (the interval lies above 0), ``refuted`` (below 0) or ``undecided``."""
    if difference.n < 2:
        return "undecided"
    if difference.low > 0:
        return "supported"
    if difference.high < 0:
        return "refuted"
    return "undecided"


def paired_p_value(differences: Sequence[float]) -> float:
    """Two-sided p-value of the paired t-test that the differences have mean 0 (``nan``
    for fewer than 2; with no spread, 0 for a non-zero mean and 1 for a zero one)."""
    n = len(differences)
    if n < 2:
        return math.nan
    mean = sum(differences) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in differences) / (n - 1))
    if sd == 0:
        return 0.0 if mean else 1.0
    return float(2 * stats.t.sf(abs(mean) / (sd / math.sqrt(n)), n - 1))


def holm(p_values: dict, level: float = 0.05) -> set:
    """The keys whose hypotheses Holm's step-down procedure rejects at family-wise error
    ``level`` (``nan`` p-values are never rejected and do not count as tests)."""
    tested = sorted((p, k) for k, p in p_values.items() if not math.isnan(p))
    rejected = set()
    for i, (p, key) in enumerate(tested):
        if p > level / (len(tested) - i):
            break
        rejected.add(key)
    return rejected
