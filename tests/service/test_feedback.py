"""The service level as feedback: the realised rate is driven to the target, within bounds."""

from __future__ import annotations

import math
import random

import pytest

from service.feedback import RELAX_LIMIT, TIGHTEN_LIMIT, ServiceLevelFeedback


def served(rng: random.Random, sized_for: float, bias: float) -> bool:
    """A plant: a pool sized for ``sized_for`` by a model whose misses are ``bias`` times
    what it believes (bias > 1: the model is too optimistic, < 1: too cautious)."""
    return rng.random() >= min(1.0, (1.0 - sized_for) * bias)


@pytest.mark.parametrize("bias", [0.5, 1.0, 2.5])
def test_the_realised_rate_converges_to_the_target_whatever_the_model_bias(bias: float) -> None:
    rng = random.Random(7)
    feedback = ServiceLevelFeedback(0.99)
    for _ in range(5000):  # settle
        feedback.connect(served(rng, feedback.target_in_force(), bias))
    outcomes = []
    for _ in range(40000):
        outcome = served(rng, feedback.target_in_force(), bias)
        feedback.connect(outcome)
        outcomes.append(outcome)
    realised = sum(outcomes) / len(outcomes)
    assert realised == pytest.approx(0.99, abs=0.002)
    # It sized for what this plant needs: about 1 - 0.01 / bias.
    assert feedback.target_in_force() == pytest.approx(1 - 0.01 / bias, abs=0.01 / bias)


def test_without_feedback_the_bias_shows() -> None:
    rng = random.Random(7)
    feedback = ServiceLevelFeedback(0.99, gain=0.0)
    outcomes = [served(rng, feedback.target_in_force(), 2.5) for _ in range(20000)]
    assert sum(outcomes) / len(outcomes) < 0.98


def test_bounded_and_no_wind_up_at_the_budget() -> None:
    feedback = ServiceLevelFeedback(0.99)
    for _ in range(1000):
        feedback.connect(False)
    assert feedback.target_in_force() == pytest.approx(1 - 0.01 / TIGHTEN_LIMIT)
    for _ in range(100000):
        feedback.connect(True)
    assert feedback.target_in_force() == pytest.approx(1 - 0.01 * RELAX_LIMIT)
    held = ServiceLevelFeedback(0.99)
    for _ in range(100):
        held.connect(False, at_budget=True)  # the scaler could not have done more
    assert held.target_in_force() == 0.99
    assert held.report().recent_rate == 0.0  # still reported


def test_the_report_says_what_is_in_force_and_why() -> None:
    feedback = ServiceLevelFeedback(0.99, window=4)
    assert feedback.report().recent_rate is None
    assert "no connect yet" in feedback.report().reason
    for outcome in (True, True, False, True, True):
        feedback.connect(outcome)
    report = feedback.report()
    assert (report.window_connects, report.window_instant) == (4, 3)
    assert report.recent_rate == 0.75
    assert report.target_in_force > 0.99
    assert "below the target" in report.reason and f"{report.target_in_force:.4f}" in report.reason


def test_state_round_trips_and_bad_state_is_refused() -> None:
    feedback = ServiceLevelFeedback(0.99)
    for outcome in (True, False, True):
        feedback.connect(outcome)
    again = ServiceLevelFeedback(0.99)
    again.load(feedback.to_dict())
    assert again.to_dict() == feedback.to_dict()
    assert again.target_in_force() == feedback.target_in_force()
    with pytest.raises(ValueError, match="finite"):
        again.load({"log_scale": math.inf})
    with pytest.raises(ValueError, match="gain"):
        ServiceLevelFeedback(0.99, gain=-1.0)
    with pytest.raises(ValueError, match="target"):
        ServiceLevelFeedback(1.0)
