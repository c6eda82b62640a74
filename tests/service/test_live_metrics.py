"""Live metrics: exact log loss and Brier against scikit-learn, histogram AUC and ECE,
rolling windows that expire, bounded buckets, and a state round trip."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

from service.live_metrics import N_FINE, Aggregate, LiveMetrics, fine_bins, window_name

T0 = 1_732_492_800.0
BUCKET = 300.0


def metrics(windows: tuple[float, ...] = (3600.0, 86_400.0)) -> LiveMetrics:
    return LiveMetrics(bucket_s=BUCKET, windows_s=windows)


def pairs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rare-event-like scores (most near 0) and outcomes drawn from them, a little off."""
    rng = np.random.default_rng(seed)
    p = rng.beta(0.3, 6.0, n)
    y = rng.random(n) < np.clip(1.3 * p, 0, 1)
    return p, y


def test_log_loss_and_brier_are_exact_and_auc_is_close_to_sklearn() -> None:
    live = metrics()
    p, y = pairs(30_000, 1)
    # ten ticks' worth, in several buckets of the last hour
    for k, (pk, yk) in enumerate(zip(np.array_split(p, 10), np.array_split(y, 10), strict=True)):
        live.add("3", T0 + 200.0 * k, pk, yk, 1.0)
    now = T0 + 2000.0
    window = live.report(now)["3"]["1h"]
    assert window.n == len(p)
    assert window.log_loss == pytest.approx(log_loss(y, p), rel=1e-9)
    assert window.brier == pytest.approx(brier_score_loss(y, p), rel=1e-9)
    assert window.base_rate == pytest.approx(y.mean(), rel=1e-12)
    assert window.mean_prediction == pytest.approx(p.mean(), rel=1e-12)
    assert window.auc == pytest.approx(roc_auc_score(y, p), abs=0.002)


def test_weighted_predictions_match_sklearn_with_sample_weights() -> None:
    live = metrics()
    p, y = pairs(4000, 2)
    w = np.repeat([1.0, 50.0], 2000)  # a tick seen whole, a tick sampled 1 in 50
    live.add("3", T0, p[:2000], y[:2000], 1.0)
    live.add("3", T0 + 10, p[2000:], y[2000:], 50.0)
    window = live.report(T0 + 60)["3"]["1h"]
    assert window.n == 4000 and window.weight == pytest.approx(w.sum())
    assert window.log_loss == pytest.approx(log_loss(y, p, sample_weight=w), rel=1e-9)
    assert window.brier == pytest.approx(brier_score_loss(y, p, sample_weight=w), rel=1e-9)
    assert window.auc == pytest.approx(roc_auc_score(y, p, sample_weight=w), abs=0.003)


def test_log_loss_clips_certain_mistakes() -> None:
    agg = Aggregate()
    agg.add(np.array([0.0, 1.0]), np.array([True, False]), 1.0)
    expected = -(np.log(1e-15) + np.log1p(-(1 - 1e-15))) / 2  # 1 - 1e-15 rounds in float64
    assert agg.metrics().log_loss == pytest.approx(expected, rel=1e-12)


def test_ece_and_reliability_see_a_miscalibration() -> None:
    rng = np.random.default_rng(3)
    p = rng.uniform(0.05, 0.6, 50_000)
    calibrated, inflated = Aggregate(), Aggregate()
    calibrated.add(p, rng.random(len(p)) < p, 1.0)
    inflated.add(p, rng.random(len(p)) < p / 2, 1.0)  # says twice the real rate
    good, bad = calibrated.metrics(), inflated.metrics()
    assert good.ece is not None and good.ece < 0.01
    assert bad.ece == pytest.approx(p.mean() / 2, rel=0.05)
    assert 10 <= len(bad.reliability) <= 15
    assert sum(b.weight for b in bad.reliability) == pytest.approx(len(p))
    for b in bad.reliability:
        assert b.observed_rate == pytest.approx(b.mean_prediction / 2, abs=0.03)
    means = [b.mean_prediction for b in bad.reliability]
    assert means == sorted(means)


def test_one_class_has_no_auc_and_nothing_settled_has_no_metrics() -> None:
    agg = Aggregate()
    agg.add(np.array([0.1, 0.2]), np.array([False, False]), 1.0)
    assert agg.metrics().auc is None and agg.metrics().log_loss is not None
    empty = Aggregate().metrics()
    assert empty.n == 0 and empty.log_loss is None and empty.reliability == []


def test_ties_within_a_bin_count_half() -> None:
    agg = Aggregate()
    agg.add(np.array([0.3, 0.3]), np.array([True, False]), 1.0)
    assert agg.metrics().auc == 0.5


def test_windows_roll_and_old_buckets_and_versions_go() -> None:
    live = metrics()
    p, y = pairs(100, 4)
    live.add("old", T0, p, y, 1.0)
    live.add("new", T0 + 3000.0, p, y, 1.0)
    report = live.report(T0 + 3000.0)
    assert report["old"]["1h"].n == 100 and report["new"]["1h"].n == 100
    report = live.report(T0 + 3700.0)  # the first bucket left the hour, not the day
    assert report["old"]["1h"].n == 0 and report["old"]["24h"].n == 100
    assert report["new"]["1h"].n == 100
    live.report(T0 + 86_400.0 + BUCKET)
    assert live.versions() == ["new"]
    live.expire(T0 + 3000.0 + 86_400.0 + BUCKET)
    assert live.versions() == []
    # a prediction older than the longest window is not counted any more
    live.add("late", T0, p, y, 1.0)
    assert live.versions() == []


def test_buckets_stay_bounded_whatever_the_uptime() -> None:
    live = metrics()
    p, y = pairs(10, 5)
    for k in range(3 * 288):  # three days, one bucket each
        live.add("3", T0 + BUCKET * k, p, y, 1.0)
    assert len(live.to_dict()["versions"]["3"]) == live.keep == 288
    assert live.report(T0 + BUCKET * (3 * 288 - 1))["3"]["24h"].n == 10 * 288


def test_state_round_trip_gives_the_same_report() -> None:
    live = metrics()
    p, y = pairs(5000, 6)
    live.add("3", T0, p[:2500], y[:2500], 1.0)
    live.add("heuristic", T0 + 400, p[2500:], y[2500:], 4.0)
    data = orjson.loads(orjson.dumps(live.to_dict()))
    restored = metrics()
    restored.load(data)
    assert restored.to_dict() == live.to_dict()
    now = T0 + 900
    assert restored.report(now) == live.report(now)


def test_a_bucket_saved_once_is_saved_again_as_it_changes() -> None:
    """A bucket keeps its packed sums between saves: a later add or merge must show."""
    p, y = pairs(400, 8)
    agg = Aggregate()
    agg.add(p[:100], y[:100], 1.0)
    first = agg.to_dict()
    assert agg.to_dict() == first
    agg.add(p[100:200], y[100:200], 2.0)
    fresh = Aggregate()
    fresh.add(p[:100], y[:100], 1.0)
    fresh.add(p[100:200], y[100:200], 2.0)
    assert agg.to_dict() == fresh.to_dict() != first
    other = Aggregate()
    other.add(p[200:], y[200:], 1.0)
    agg.merge(other)
    fresh.merge(other)
    assert agg.to_dict() == fresh.to_dict()
    assert Aggregate.from_dict(agg.to_dict()).to_dict() == agg.to_dict()


def test_a_new_bucket_size_drops_the_saved_buckets() -> None:
    live = metrics()
    live.add("3", T0, *pairs(10, 7), 1.0)
    other = LiveMetrics(bucket_s=60.0, windows_s=(3600.0,))
    other.load(live.to_dict())
    assert other.versions() == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"n": -1}, "n must be an integer"),
        ({"weight": float("nan")}, "sums must be finite"),
        ({"bins": "%%%"}, "not valid base64"),
        ({"pos": "AAAA"}, "bytes, not a whole number"),
        ({"neg": ""}, "must hold"),
    ],
)
def test_bad_state_is_refused_with_a_clear_message(change: dict[str, object], message: str) -> None:
    live = metrics()
    live.add("3", T0, *pairs(50, 8), 1.0)
    data = live.to_dict()
    bucket = next(iter(data["versions"]["3"].values()))
    bucket.update(change)
    with pytest.raises(ValueError, match=message):
        metrics().load(data)


def test_fine_bins_cover_zero_to_one() -> None:
    bins = fine_bins(np.array([0.0, 1e-9, 0.5, 1 - 1e-9, 1.0]))
    assert bins[0] == 0 and bins[1] == 0 and bins[-1] == N_FINE - 1 and bins[-2] == N_FINE - 1
    assert bins[2] == N_FINE // 2
    assert np.all(np.diff(fine_bins(np.linspace(0, 1, 1001))) >= 0)


def test_window_names() -> None:
    assert [window_name(s) for s in (3600.0, 86_400.0, 300.0, 90.0)] == ["1h", "24h", "5m", "90s"]
