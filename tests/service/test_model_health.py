"""The health monitor on synthetic traffic: stable, a drifted feature, a jump of the loss."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from models.reference import FeatureReference
from service.model_health import DEFAULT_THRESHOLDS, HealthThresholds, ModelHealth

NAMES = ("x", "y", "flag")
TICK = 10.0
JUMP_DETECTED_WITHIN = 40
"""Batches (of 200 settled predictions) within which a doubled connect rate is detected
(measured: 17-25 over seeds 3-22, with no false alarm in their 300 stable batches)."""
HOUR = HealthThresholds(window_s=3600.0)
"""A window of an hour: the tests of the window's mechanics count rows in it."""

Matrix = np.ndarray[Any, np.dtype[np.float64]]


def rows(n: int, rng: np.random.Generator, shift: float = 0.0) -> Matrix:
    return np.column_stack(
        [rng.normal(shift, 1.0, n), rng.exponential(2.0, n), rng.random(n) < 0.2]
    ).astype(np.float64)


def reference() -> FeatureReference:
    return FeatureReference.fit(rows(20_000, np.random.default_rng(0)), NAMES)


def outcomes(
    rng: np.random.Generator, n: int = 200, rate: float = 1.0
) -> tuple[Matrix, np.ndarray[Any, np.dtype[np.bool_]]]:
    """Probabilities around 4 %, and connects at ``rate`` times them (1: calibrated)."""
    p = np.clip(rng.beta(0.5, 12.0, n), 1e-4, 0.9)
    return p, rng.random(n) < np.clip(p * rate, 0.0, 1.0)


def test_stable_traffic_is_not_degraded() -> None:
    rng = np.random.default_rng(1)
    health = ModelHealth(reference(), version="3", thresholds=HOUR)
    for k in range(400):
        now = k * TICK
        health.observe_features(rows(100, rng), now)
        health.observe_outcomes(*outcomes(rng), now)
    report = health.report(400 * TICK)
    assert not report.degraded and report.reasons == [] and report.notes == []
    assert report.psi_max is not None and report.psi_max < 0.1
    assert report.drifted_features == [] and report.loss_change is None
    # The window is the last hour, in whole buckets of 5 minutes: ticks from 300 s on.
    assert report.rows == 37_000
    assert report.settled == 80_000 and report.batches == 400
    assert report.loss_ratio == pytest.approx(1.0, abs=0.1)
    assert json.loads(json.dumps(report.to_dict()))["version"] == "3"


def test_a_shifted_feature_is_flagged_once_enough_rows_are_in_the_window() -> None:
    rng = np.random.default_rng(2)
    health = ModelHealth(reference(), version="3", thresholds=HOUR)
    health.observe_features(rows(500, rng, shift=1.5), 0.0)
    early = health.report(0.0)
    assert not early.degraded and "drift not judged" in early.notes[0]
    health.observe_features(rows(1000, rng, shift=1.5), TICK)
    report = health.report(TICK)
    assert report.degraded and report.drifted_features == ["x"]
    assert report.psi["x"] > 0.25 and report.psi["y"] < 0.1 and report.psi_max == report.psi["x"]
    assert "feature drift" in report.reasons[0] and "x" in report.reasons[0]
    # An hour later the drifted rows have left the window; stable ones replace them.
    health.observe_features(rows(2000, rng), 2 * 3600.0)
    assert not health.report(2 * 3600.0).degraded


def test_a_jump_of_the_loss_is_detected_within_a_few_dozen_batches() -> None:
    for seed in (3, 4, 5):
        rng = np.random.default_rng(seed)
        health = ModelHealth(reference(), version="3")
        for k in range(300):
            assert health.observe_outcomes(*outcomes(rng), k * TICK) is None
        detected = None
        for k in range(1, 200):
            change = health.observe_outcomes(*outcomes(rng, rate=2.0), (300 + k) * TICK)
            if change is not None:
                detected = k
                break
        assert detected is not None and detected <= JUMP_DETECTED_WITHIN, (seed, detected)
        report = health.report((300 + detected) * TICK)
        assert report.degraded and "live loss rose" in report.reasons[0]
        change = report.loss_change
        assert change is not None and change.increase and change.after > change.before
        assert change.before_log_loss is not None and change.after_log_loss is not None
        assert change.after_log_loss > change.before_log_loss


def test_a_rise_on_too_few_settled_predictions_does_not_count() -> None:
    rng = np.random.default_rng(3)
    health = ModelHealth(
        reference(), version="3", thresholds=HealthThresholds(min_settled=10**9, min_rows=0)
    )
    for k in range(300):
        health.observe_outcomes(*outcomes(rng), k * TICK)
    for k in range(200):
        health.observe_outcomes(*outcomes(rng, rate=3.0), (300 + k) * TICK)
    report = health.report(500 * TICK)
    assert report.loss_change is not None and not report.degraded
    assert "not counted" in report.notes[-1]


def test_small_ticks_are_batched_and_other_versions_ignored() -> None:
    rng = np.random.default_rng(6)
    health = ModelHealth(reference(), version="3")
    for k in range(9):
        health.observe_outcomes(*outcomes(rng, n=20), k * TICK)
    assert health.report(90.0).batches == 0  # 180 settled: under one batch of 200
    health.observe_outcomes(*outcomes(rng, n=20), 90.0)
    assert health.report(90.0).batches == 1
    health.observe_outcomes(*outcomes(rng, n=500), 100.0, version="2")
    assert health.report(100.0).settled == 200


def test_a_new_champion_starts_afresh_and_the_same_one_keeps_its_state() -> None:
    rng = np.random.default_rng(7)
    ref = reference()
    health = ModelHealth(ref, version="3")
    health.observe_features(rows(2000, rng), 0.0)
    health.observe_outcomes(*outcomes(rng), 0.0)
    health.set_reference("3", ref)
    assert health.report(0.0).rows == 2000
    health.set_reference("4", ref)
    report = health.report(0.0)
    assert (report.version, report.rows, report.settled) == ("4", 0, 0)
    health.set_reference("5", None)  # trained before references: drift is not judged
    health.observe_features(rows(2000, rng, shift=3.0), 0.0)
    unjudged = health.report(0.0)
    assert (
        not unjudged.degraded
        and unjudged.psi == {}
        and "no training reference" in (unjudged.notes[0])
    )


def test_state_round_trips_through_json_and_adwin_is_rebuilt() -> None:
    rng = np.random.default_rng(8)
    health = ModelHealth(reference(), version="3")
    for k in range(250):
        health.observe_features(rows(50, rng), k * TICK)
        health.observe_outcomes(*outcomes(rng, n=130), k * TICK)
    saved = json.loads(json.dumps(health.to_dict()))
    loaded = ModelHealth.load(saved)
    assert loaded.report(2500.0) == health.report(2500.0)
    # Fed the same jump, the rebuilt detector sees the change when the original does.
    jump = [outcomes(rng, rate=2.5) for _ in range(150)]
    first = [health.observe_outcomes(p, y, 3000.0 + k) for k, (p, y) in enumerate(jump)]
    again = [loaded.observe_outcomes(p, y, 3000.0 + k) for k, (p, y) in enumerate(jump)]
    assert [c is not None for c in first] == [c is not None for c in again]
    assert any(c is not None for c in first)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": 9}, "format"),
        ({"buckets": {"1": [[1.0]]}}, "shape"),
        ({"settled": -1}, "negative"),
        ({"pending": [1, 2]}, "bad health state"),
        ({"reference": {"format": 1}}, "feature_names"),
    ],
)
def test_bad_state_is_refused(change: dict[str, Any], message: str) -> None:
    state = ModelHealth(reference(), version="3").to_dict() | change
    with pytest.raises(ValueError, match=message):
        ModelHealth.load(state)


def test_bad_input_is_refused() -> None:
    health = ModelHealth(reference(), version="3")
    with pytest.raises(ValueError, match="feature matrix"):
        health.observe_features(np.zeros((3, 2)), 0.0)
    with pytest.raises(ValueError, match="1-D"):
        health.observe_outcomes(np.zeros(3), np.zeros(2), 0.0)
    with pytest.raises(ValueError, match="within"):
        health.observe_outcomes(np.array([1.5]), np.array([1.0]), 0.0)
    with pytest.raises(ValueError, match="outcomes"):
        health.observe_outcomes(np.array([0.5]), np.array([0.5]), 0.0)
    with pytest.raises(ValueError, match="bucket_s"):
        HealthThresholds(window_s=60.0, bucket_s=120.0)


def test_the_clock_and_the_length_of_history_are_reported_not_judged() -> None:
    """A calendar feature (over an hour, the hour's value) and a history-length one (longer
    as the service runs) move whoever the users are: their PSI is shown, never judged."""
    names = ("x", "hour_sin", "days_seen")
    rng = np.random.default_rng(5)
    health = ModelHealth(FeatureReference.fit(rows(20_000, rng), names), version="3")
    moved = rows(3000, rng)
    moved[:, 1] = 0.7  # one hour of the day
    moved[:, 2] += 30.0  # a month more of history
    health.observe_features(moved, 0.0)
    report = health.report(0.0)
    assert report.psi["hour_sin"] > 1.0 and report.psi["days_seen"] > 1.0
    assert not report.degraded and report.drifted_features == []
    assert report.psi_max == report.psi["x"] < 0.1
    assert DEFAULT_THRESHOLDS.window_s == 6 * 3600.0
