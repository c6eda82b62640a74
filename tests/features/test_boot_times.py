"""Boot times learned online: the prior fades, a drift is followed, slow nodes show at once."""

from __future__ import annotations

import random

import numpy as np
import pytest

from features.boot_times import BootTimes, boot_durations, lead_time_s
from features.events import Event, NodeStatus, NodeStatusChanged, UserConnect


def fed(boots: list[float], **options: float) -> BootTimes:
    times = BootTimes(**options)  # type: ignore[arg-type]
    for b in boots:
        assert times.add(b)
    return times


def test_the_prior_stands_alone_then_fades() -> None:
    times = BootTimes(prior_s=30.0)
    assert times.quantile(0.95) == 30.0
    assert times.summary(0.95)["prior_share"] == 1.0
    rng = random.Random(1)
    for _ in range(200):
        times.add(rng.uniform(100, 120))
    assert 115 <= times.quantile(0.95) <= 120
    assert times.quantile(0.05) >= 100  # the prior no longer shows, even at the low end
    assert times.summary(0.95)["prior_share"] < 0.01


def test_a_drift_is_followed_within_about_a_half_life_of_boots() -> None:
    rng = random.Random(2)
    times = fed([rng.uniform(10, 29) for _ in range(256)])
    assert times.quantile(0.95) <= 29
    slow = [rng.uniform(60, 180) for _ in range(64)]
    for i, boot in enumerate(slow, 1):
        times.add(boot)
        if i == 8:
            after_8 = times.quantile(0.95)
    assert after_8 >= 60, "a few slow boots already move the high quantile"
    assert times.quantile(0.95) >= 150
    assert times.quantile(0.5) >= 60  # after two half-lives the slow boots are the majority


def test_nodes_still_booting_count_as_boots_at_least_that_long() -> None:
    times = fed([20.0] * 100)
    assert times.quantile(0.95) == 20.0
    assert times.quantile(0.95, booting_ages=[5.0, 15.0]) == 20.0  # young: no evidence
    many_slow = [90.0 + i for i in range(10)]
    assert times.quantile(0.95, booting_ages=many_slow) >= 90.0


def test_ready_within_is_the_conditional_chance_given_the_age() -> None:
    times = fed([float(b) for b in range(10, 30)] * 10, prior_s=20.0)
    p = times.ready_within([0.0, 25.0, 28.0, 40.0], 10.0)
    assert p[0] < 0.1  # only the boots of exactly 10 s
    assert p[1] == pytest.approx(1.0)  # older than 25 s: ready within 10 s more
    assert p[2] == pytest.approx(1.0)
    assert p[3] == 0.0  # older than every boot seen: not counted on
    mid = times.ready_within([15.0], 5.0)[0]
    assert 0.3 < mid < 0.45  # boots of 16..20 s among those of 16..29 s: 5/14
    assert len(times.ready_within([], 10.0)) == 0


def test_state_round_trips_and_bad_values_are_refused() -> None:
    times = fed([12.0, 18.0, 25.0], capacity=2)
    assert times.seen == 3 and times.summary(0.95)["kept"] == 2
    again = BootTimes(capacity=2)
    again.load(times.to_dict())
    assert again.to_dict() == times.to_dict()
    assert again.quantile(0.9) == times.quantile(0.9)
    assert not times.add(float("nan")) and not times.add(-1.0)
    with pytest.raises(ValueError, match="finite"):
        again.load({"seen": 1, "boots": [float("inf")]})
    with pytest.raises(ValueError, match="half-life"):
        BootTimes(half_life=0)


def test_boot_durations_come_from_logged_node_events() -> None:
    events: list[Event] = [
        NodeStatusChanged(100.0, "a", NodeStatus.BOOTING),
        NodeStatusChanged(101.0, "b", NodeStatus.BOOTING),
        UserConnect(105.0, "u1"),
        NodeStatusChanged(120.0, "a", NodeStatus.READY),
        NodeStatusChanged(125.0, "b", NodeStatus.TERMINATED),  # never ready: no boot
        NodeStatusChanged(130.0, "c", NodeStatus.READY),  # booting not seen: no boot
        NodeStatusChanged(140.0, "a", NodeStatus.READY),  # a second ready: no second boot
    ]
    assert boot_durations(events) == [20.0]


def test_the_lead_time_is_one_tick_plus_the_boot() -> None:
    assert lead_time_s(29.0, 10.0) == 39.0
    assert np.isclose(lead_time_s(0.0, 10.0), 10.0)


def test_ready_within_many_times_is_each_time_s_column() -> None:
    boots = BootTimes(prior_s=30.0)
    rng = random.Random(3)
    for _ in range(200):
        boots.add(rng.uniform(60.0, 180.0))
    ages, times = [0.0, 50.0, 150.0], np.array([20.0, 90.0, 184.0])
    table = boots.ready_within(ages, times)
    assert table.shape == (3, 3)
    for k, t in enumerate(times):
        assert table[:, k] == pytest.approx(boots.ready_within(ages, float(t)))
    assert boots.ready_within([], times).shape == (0, 3)
