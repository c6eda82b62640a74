"""The bounded wait histogram: quantiles within 1 % of the waits seen, exact mean, bounded
size, exact JSON round trip, and state saved as a list still loads."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from service.service_level import Metrics
from service.wait_histogram import RELATIVE_ACCURACY, WaitHistogram


def nearest_rank(values: np.ndarray, q: float) -> float:
    ordered = np.sort(values)
    return float(ordered[max(1, math.ceil(q * len(values))) - 1])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_quantiles_within_the_relative_accuracy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    waits = np.concatenate([rng.lognormal(2.0, 1.5, 20_000), np.zeros(500)])
    histogram = WaitHistogram()
    for wait in waits:
        histogram.add(float(wait))
    assert histogram.count == len(waits)
    assert histogram.mean() == pytest.approx(float(waits.mean()), rel=1e-12)
    for q in (0.01, 0.5, 0.9, 0.95, 0.99, 1.0):
        exact = nearest_rank(waits, q)
        if exact == 0.0:
            assert histogram.quantile(q) == 0.0
        else:
            assert histogram.quantile(q) == pytest.approx(exact, rel=RELATIVE_ACCURACY)


def test_size_is_bounded_whatever_the_count() -> None:
    rng = np.random.default_rng(7)
    histogram = WaitHistogram()
    for _ in range(5):
        for wait in rng.uniform(0.0, 3600.0, 50_000):
            histogram.add(float(wait))
        # a millisecond to an hour is at most 810 buckets; the state only grows by digits
        assert histogram.buckets <= 810
        assert len(json.dumps(histogram.to_dict())) < 16_000
    assert histogram.count == 250_000


def test_round_trip_is_exact_and_validated() -> None:
    histogram = WaitHistogram()
    for wait in (0.0, 0.5, 3.0, 3.0, 120.0):
        histogram.add(wait)
    again = WaitHistogram.from_dict(json.loads(json.dumps(histogram.to_dict())))
    assert again.to_dict() == histogram.to_dict()
    assert again.quantile(0.95) == histogram.quantile(0.95)
    broken = histogram.to_dict() | {"count": 6}
    with pytest.raises(ValueError, match="add up"):
        WaitHistogram.from_dict(broken)
    with pytest.raises(ValueError, match="finite"):
        histogram.add(math.nan)


def test_metrics_saved_with_a_list_of_waits_still_load() -> None:
    metrics = Metrics()
    for wait in (4.0, 9.0, 30.0):
        metrics.served_after_wait(wait)
    data = metrics.to_dict()
    old = data | {"waits": [4.0, 9.0, 30.0]}
    assert Metrics.from_dict(old).report(0.0, 0.0) == Metrics.from_dict(data).report(0.0, 0.0)


def test_telemetry_reads_each_wait_once() -> None:
    metrics = Metrics()
    for wait in (1.0, 2.0):
        metrics.served_after_wait(wait)
    assert metrics.waits_after(0) == [1.0, 2.0]
    assert metrics.waits_after(2) == []
    metrics.served_after_wait(3.0)
    assert metrics.waits_after(2) == [3.0]
    restored = Metrics.from_dict(metrics.to_dict())  # a new process: nothing held one by one
    assert restored.waits_after(0) == []
