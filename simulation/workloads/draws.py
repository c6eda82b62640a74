"""Random draws the workloads share, all from a caller's ``random.Random`` (deterministic)."""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections.abc import Sequence


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson count with ``mean`` (Knuth's method; a rounded normal above 30)."""
    if mean <= 0:
        return 0
    if mean > 30:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit = math.exp(-mean)
    count = 0
    product = rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def log_uniform(rng: random.Random, low: float, high: float) -> float:
    """Uniform in log space between ``low`` and ``high`` (both > 0)."""
    return math.exp(rng.uniform(math.log(low), math.log(high)))


def clipped_gauss(rng: random.Random, sigma: float, limit: float) -> float:
    """A normal draw with mean 0 and deviation ``sigma``, clipped to ``[-limit, limit]``."""
    if sigma <= 0:
        return 0.0
    return max(-limit, min(limit, rng.gauss(0.0, sigma)))


class DayProfile:
    """Relative activity per UTC hour (24 weights): draws times of day weighted by them."""

    def __init__(self, weights: Sequence[float]) -> None:
        if len(weights) != 24:
            raise ValueError(f"a day profile has 24 hourly weights, not {len(weights)}")
        if any(w < 0 or not math.isfinite(w) for w in weights) or sum(weights) <= 0:
            raise ValueError("hourly weights must be finite, >= 0, and not all 0")
        self.weights = tuple(float(w) for w in weights)
        self.peak = max(self.weights)
        self.cumulative = tuple(itertools.accumulate(self.weights))
        self.total = self.cumulative[-1]

    @property
    def mean_fraction(self) -> float:
        """Average weight over the day relative to the peak hour (0-1]."""
        return self.total / (24 * self.peak)

    def time_of_day(self, rng: random.Random) -> float:
        """Seconds after midnight: an hour drawn by weight, then a uniform second in it."""
        hour = bisect.bisect_right(self.cumulative, rng.random() * self.total)
        return (min(hour, 23) + rng.random()) * 3600.0
