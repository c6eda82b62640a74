"""The instant rate per window of time (``service.connect_windows``)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from models.heuristic import HeuristicScorer
from service.config import ServiceConfig
from service.connect_windows import (
    BUCKET_S,
    WINDOWS_S,
    ConnectWindows,
    ServiceLevel,
    window_label,
)
from service.engine import Engine
from simulation.nodes.boot import DEFAULT_BOOT_SPEC, parse_boot_time
from simulation.policies import StaticPolicy
from simulation.runner import run
from simulation.workloads import DEFAULT_START, generate

T0 = 1_800_000_000.0
"""A whole minute (and hour): the first bucket starts here."""
TARGET = 0.99


def counts(level: ServiceLevel) -> dict[str, tuple[int, int]]:
    return {w.window: (w.connects, w.instant) for w in level.windows}


def test_the_windows_are_the_four_named_ones_shortest_first() -> None:
    assert [window_label(s) for s in WINDOWS_S] == ["5m", "30m", "1h", "6h"]
    assert window_label(90) == "90s" and window_label(86_400) == "1d"
    level = ConnectWindows().service_level(T0, TARGET)
    assert [w.window for w in level.windows] == ["5m", "30m", "1h", "6h"]
    assert [w.seconds for w in level.windows] == list(WINDOWS_S)
    assert all(s % BUCKET_S == 0 for s in WINDOWS_S)


def test_no_connect_no_rate_and_no_burn() -> None:
    level = ConnectWindows().service_level(T0, TARGET)
    for window in level.windows:
        assert (window.connects, window.instant) == (0, 0)
        assert window.instant_rate is None and window.burn_rate is None


def test_each_window_counts_the_connects_within_it() -> None:
    windows = ConnectWindows()
    # one connect every minute for 7 hours, every fourth one waited
    for minute in range(7 * 60):
        windows.record(T0 + 60 * minute + 5, instant=minute % 4 != 0)
    now = T0 + 7 * 3600 - 1  # the last minute's connect is in the current bucket
    level = windows.service_level(now, TARGET)
    # a window of w seconds: the current minute and the w/60 before it
    for window in level.windows:
        minutes = range(7 * 60 - 1 - window.seconds // 60, 7 * 60)
        assert window.connects == len(minutes)
        assert window.instant == sum(1 for m in minutes if m % 4 != 0)
        assert window.instant_rate == window.instant / window.connects
        assert window.burn_rate is not None
        assert math.isclose(window.burn_rate, (1 - window.instant_rate) / (1 - TARGET))
    assert level.window("1h").connects == 61 and level.window("6h").connects == 361


def test_a_window_covers_at_least_its_length_and_at_most_one_bucket_more() -> None:
    windows = ConnectWindows()
    windows.record(T0, instant=False)
    five = 300
    # at T0 + 300 the connect is exactly 5 min old: in the 5 min window ...
    assert windows.service_level(T0 + five, TARGET).window("5m").connects == 1
    # ... and still until the bucket after the next one starts ...
    assert windows.service_level(T0 + five + BUCKET_S - 0.001, TARGET).window("5m").connects == 1
    # ... but no longer once a whole bucket more has passed
    level = windows.service_level(T0 + five + BUCKET_S, TARGET)
    assert level.window("5m").connects == 0 and level.window("30m").connects == 1
    assert level.window("5m").instant_rate is None


def test_the_burn_rate_against_the_target() -> None:
    windows = ConnectWindows()
    for i in range(100):
        windows.record(T0 + i, instant=i >= 10)  # 90 % at once
    hour = windows.service_level(T0 + 200, TARGET).window("1h")
    assert hour.instant_rate == 0.9
    assert hour.burn_rate is not None and math.isclose(hour.burn_rate, 10.0)
    assert math.isclose(windows.service_level(T0 + 200, 0.9).window("1h").burn_rate or 0, 1.0)
    perfect = ConnectWindows()
    perfect.record(T0, instant=True)
    assert perfect.service_level(T0, TARGET).window("5m").burn_rate == 0.0
    for target in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="target"):
            windows.service_level(T0, target)


def test_memory_is_bounded_whatever_the_traffic() -> None:
    windows = ConnectWindows()
    longest = max(WINDOWS_S)
    for second in range(0, 12 * 3600, 2):  # a connect every 2 s for 12 hours
        windows.record(T0 + second, instant=True)
    saved = windows.to_dict()["buckets"]
    assert len(saved) == longest // BUCKET_S + 1
    assert saved[0][0] == T0 + 12 * 3600 - longest - BUCKET_S  # older buckets were reused
    level = windows.service_level(T0 + 12 * 3600 - 1, TARGET)
    assert level.window("6h").connects == (longest + BUCKET_S) // 2


def test_a_connect_older_than_the_ring_is_dropped_and_old_buckets_leave() -> None:
    windows = ConnectWindows()
    later = T0 + (max(WINDOWS_S) + BUCKET_S)  # its bucket takes the slot of T0's
    windows.record(later, instant=True)
    windows.record(T0, instant=False)  # older than any window ending at `later`: dropped
    assert windows.to_dict() == {"buckets": [[later, 1, 1]]}
    assert counts(windows.service_level(later, TARGET))["6h"] == (1, 1)
    # six hours and two minutes later it has left every window
    assert counts(windows.service_level(later + 6 * 3600 + 120, TARGET))["6h"] == (0, 0)


def test_the_saved_state_round_trips() -> None:
    windows = ConnectWindows()
    for i in range(500):
        windows.record(T0 + 37 * i, instant=i % 7 != 0)
    saved = windows.to_dict()
    again = ConnectWindows()
    again.record(T0, instant=False)  # replaced by the load
    again.load(saved)
    assert again.to_dict() == saved
    now = T0 + 37 * 500
    assert again.service_level(now, TARGET) == windows.service_level(now, TARGET)
    again.load(None)  # a state saved before the windows existed
    assert again.to_dict() == {"buckets": []}


def test_a_saved_state_of_other_buckets_is_read_into_these() -> None:
    windows = ConnectWindows()
    windows.load({"buckets": [[T0, 3, 2], [T0 + 20, 1, 1], [T0 + 40, 2, 0]]})  # 20 s buckets
    assert windows.to_dict() == {"buckets": [[T0, 6, 3]]}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "a list 'buckets'"),
        ({}, "a list 'buckets'"),
        ({"buckets": {"0": 1}}, "a list 'buckets'"),
        ({"buckets": [[T0, 1]]}, r"\[start_s, connects, instant\]"),
        ({"buckets": ["abc"]}, r"\[start_s, connects, instant\]"),
        ({"buckets": [["x", 1, 1]]}, "not a time"),
        ({"buckets": [[math.nan, 1, 1]]}, "not a time"),
        ({"buckets": [[-60, 1, 1]]}, "not a time"),
        ({"buckets": [[True, 1, 1]]}, "not a time"),
        ({"buckets": [[T0, 1, 2]]}, "0 <= instant <= connects"),
        ({"buckets": [[T0, -1, 0]]}, "0 <= instant <= connects"),
        ({"buckets": [[T0, 1.5, 1]]}, "whole numbers"),
        ({"buckets": [[T0, 2, None]]}, "whole numbers"),
    ],
)
def test_bad_saved_data_is_refused_saying_what_is_wrong(data: Any, message: str) -> None:
    windows = ConnectWindows()
    windows.record(T0, instant=True)
    with pytest.raises(ValueError, match=message):
        windows.load(data)


@pytest.mark.parametrize("core", ["engine", "static:1"])
def test_over_a_run_the_longest_window_is_the_runs_instant_rate(core: str) -> None:
    """Recorded by the core as the pool counts its connects: over a run shorter than the
    longest window, that window's counts are ``metrics``' (a static pool of one node
    makes many users wait, the engine few)."""
    config = ServiceConfig()
    engine = Engine(HeuristicScorer(), config) if core == "engine" else StaticPolicy(1, config)
    hours = 3.0
    end = DEFAULT_START + hours * 3600
    result = run(
        generate("seed", hours=hours, seed=2),
        engine,
        start=DEFAULT_START,
        end=end,
        boot=parse_boot_time(DEFAULT_BOOT_SPEC),
        seed=2,
    )
    whole = engine.connect_windows.service_level(end, TARGET).window("6h")
    assert result.connects > 100 and result.waited > 0
    assert (whole.connects, whole.instant) == (result.connects, result.instant)
    assert whole.instant_rate == result.instant_rate
    if core == "static:1":
        assert result.instant_rate < 0.9


def test_the_engine_saves_and_restores_its_windows() -> None:
    config = ServiceConfig()
    engine = Engine(HeuristicScorer(), config)
    end = DEFAULT_START + 3600
    run(
        generate("seed", hours=1, seed=3),
        engine,
        start=DEFAULT_START,
        end=end,
        boot=parse_boot_time(DEFAULT_BOOT_SPEC),
        seed=3,
    )
    saved = json.loads(json.dumps(engine.to_dict()))
    restored = Engine.from_dict(saved, HeuristicScorer())
    assert engine.connect_windows.to_dict()["buckets"]
    assert restored.connect_windows.to_dict() == engine.connect_windows.to_dict()
