"""The label horizon chosen from boots: the service's lead-time rule, the default, a given one."""

from __future__ import annotations

import math
import random

import pytest

from features.boot_times import (
    DEFAULT_BOOT_QUANTILE,
    DEFAULT_TICK_INTERVAL_S,
    BootTimes,
    lead_time_s,
)
from models.defaults import DEFAULT_HORIZON_S
from models.horizon import HorizonChoice, HorizonSource, choose_horizon, horizon_from_boots


def test_no_boots_keep_the_default_and_say_so() -> None:
    for durations in ([], [math.nan, -1.0, math.inf]):  # not boots: not counted
        choice = horizon_from_boots(durations)
        assert choice == HorizonChoice(
            DEFAULT_HORIZON_S, HorizonSource.DEFAULT, boots=0, boot_quantile=DEFAULT_BOOT_QUANTILE
        )
        assert "default" in choice.describe() and "no node boots" in choice.describe()


def test_boots_give_a_tick_plus_their_high_quantile() -> None:
    choice = horizon_from_boots([50.0] * 100)
    assert choice.source is HorizonSource.BOOTS
    assert (choice.horizon_s, choice.boots, choice.boot_s) == (60.0, 100, 50.0)
    assert choice.boot_quantile == 0.95
    assert choice.describe() == (
        "label horizon 60 s: a 10 s tick plus the 0.95 quantile (50 s) of 100 node boot(s) "
        "in the range"
    )
    spread = horizon_from_boots([float(s) for s in range(1, 101)] * 3)  # 1..100 s, 300 boots
    assert spread.boots == 300 and spread.boot_s is not None and 90.0 <= spread.boot_s <= 100.0
    assert spread.horizon_s == DEFAULT_TICK_INTERVAL_S + spread.boot_s


def test_it_is_the_service_s_rule_recent_boots_and_prior_included() -> None:
    rng = random.Random(3)
    durations = [rng.uniform(5.0, 80.0) for _ in range(400)]
    service = BootTimes()
    for seconds in durations:
        service.add(seconds)
    expected = lead_time_s(service.quantile(DEFAULT_BOOT_QUANTILE), DEFAULT_TICK_INTERVAL_S)
    assert horizon_from_boots(durations).horizon_s == expected
    # The latest boots weigh most: boots that got slower give the slow horizon, and back.
    assert horizon_from_boots([20.0] * 200 + [50.0] * 100).horizon_s == 60.0
    assert horizon_from_boots([50.0] * 100 + [20.0] * 200).horizon_s == 30.0
    # A few fast boots do not outweigh the prior (30 s, weighing four boots) yet.
    few = horizon_from_boots([5.0] * 3)
    assert (few.source, few.boots, few.horizon_s) == (HorizonSource.BOOTS, 3, 40.0)


@pytest.mark.parametrize("durations", [[], [50.0] * 100])
def test_a_given_horizon_wins(durations: list[float]) -> None:
    choice = choose_horizon(25.0, durations)
    assert choice == HorizonChoice(25.0, HorizonSource.GIVEN)
    assert choice.as_dict() == {
        "horizon_s": 25.0,
        "source": "given",
        "boots": None,
        "boot_quantile": None,
        "boot_s": None,
    }
    assert choice.describe() == "label horizon 25 s (given)"
    assert choose_horizon(None, durations) == horizon_from_boots(durations)
