"""The online and the batch path give the same features (River's learn_one / learn_many)."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.batch import snapshots
from features.definitions import FEATURE_NAMES, compute_features
from features.events import Event, UserActivity, UserConnect, UserDisconnect
from features.online import OnlineFeatures
from features.table import EventTable, to_ms
from simulation.workloads import generate

T0 = 1_732_492_800.0  # a Monday, 00:00 UTC
EXACT = [name for name in FEATURE_NAMES if name not in {"act_decay_60s", "hour_sin", "hour_cos"}]


def assert_parity(events: list[Event], query_times_ms: list[int]) -> None:
    """Feed the events online and compare with batch snapshots at each query time."""
    table = EventTable.from_events(events)
    users = list(table.user_ids)
    online = OnlineFeatures(capacity=2)
    ordered = sorted(events, key=lambda e: to_ms(e.ts))
    position = 0
    for t in sorted(query_times_ms):
        while position < len(ordered) and to_ms(ordered[position].ts) <= t:
            online.update(ordered[position])
            position += 1
        got = online.features(t, users)
        want = compute_features(
            snapshots(table, np.arange(len(users)), np.full(len(users), t, dtype=np.int64))
        )
        for j, name in enumerate(FEATURE_NAMES):
            if name in EXACT:
                assert np.array_equal(got[:, j], want[:, j]), (name, t, got[:, j], want[:, j])
            else:
                np.testing.assert_allclose(
                    got[:, j], want[:, j], rtol=1e-12, atol=1e-12, err_msg=f"{name} at {t}"
                )


def test_hand_made_trace_has_the_known_values() -> None:
    events: list[Event] = [
        UserActivity(T0 + 0.0, "a", int(T0)),
        UserActivity(T0 + 10.0, "a", int(T0 + 10)),
        UserConnect(T0 + 20.0, "a"),
        UserConnect(T0 + 25.0, "a"),  # repeated: changes nothing
        UserDisconnect(T0 + 80.0, "a"),
        UserDisconnect(T0 + 85.0, "a"),  # repeated: changes nothing
        UserActivity(T0 + 300.0, "a", int(T0 + 300)),  # > 120 s after the last: new burst
        UserConnect(T0 + 380.0, "a"),
        UserDisconnect(T0 + 500.0, "a"),
    ]
    table = EventTable.from_events(events)
    row = dict(
        zip(
            FEATURE_NAMES,
            compute_features(snapshots(table, [0], [to_ms(T0 + 600.0)]))[0],
            strict=True,
        )
    )
    assert row["since_activity_s"] == 300.0
    assert row["since_connect_s"] == 220.0
    assert row["since_disconnect_s"] == 100.0
    assert row["connected"] == 0.0
    assert row["n_sessions"] == 2.0
    assert row["mean_session_s"] == (60.0 + 120.0) / 2
    assert row["mean_gap_s"] == 300.0  # 80 -> 380
    assert row["gap_ratio"] == 100.0 / 300.0
    assert row["act_10m"] == 1.0 and row["act_1h"] == 3.0 and row["act_2m"] == 0.0
    assert row["connects_per_burst"] == 1.0  # 2 connects, 2 bursts
    assert row["burst_count"] == 0.0  # 300 s since the last activity: no burst now
    assert row["day_of_week"] == 0.0 and row["is_weekend"] == 0.0
    assert row["habit_now"] == 1.0  # both connects in hour 0, now is hour 0
    at_30 = dict(
        zip(
            FEATURE_NAMES,
            compute_features(snapshots(table, [0], [to_ms(T0 + 30.0)]))[0],
            strict=True,
        )
    )
    assert at_30["connected"] == 1.0 and at_30["n_sessions"] == 0.0
    assert at_30["burst_count"] == 2.0 and at_30["burst_len_s"] == 30.0
    assert at_30["act_30s"] == 1.0 and at_30["act_2m"] == 2.0
    assert at_30["since_disconnect_s"] == 7 * 86400.0  # never: the cap
    assert_parity(events, [to_ms(T0 + s) for s in (0, 5, 20, 25, 30, 80, 86, 300, 381, 600)])


@st.composite
def traces(draw: st.DrawFn) -> tuple[list[Event], list[int]]:
    n_users = draw(st.integers(1, 4))
    gaps = st.sampled_from(
        [0.0, 0.001, 0.5, 1.0, 29.999, 30.0, 59.9, 120.0, 120.001, 400.0, 3599.0, 7200.0]
    )
    ts = T0 + draw(st.floats(0, 86400 * 6, allow_nan=False))
    events: list[Event] = []
    for _ in range(draw(st.integers(0, 120))):
        ts += draw(gaps)
        user = f"u{draw(st.integers(0, n_users - 1))}"
        kind = draw(st.sampled_from(["a", "a", "a", "c", "d"]))
        if kind == "a":
            events.append(UserActivity(ts, user, int(ts)))
        elif kind == "c":
            events.append(UserConnect(ts, user))
        else:
            events.append(UserDisconnect(ts, user))
    times = [to_ms(e.ts) for e in events]
    extra = draw(st.lists(st.floats(-100, 10_000, allow_nan=False), max_size=6))
    start = times[0] if times else to_ms(T0)
    queries = sorted(set(times + [start + int(x * 1000) for x in extra]))
    return events, queries


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(traces())
def test_parity_on_random_traces(trace: tuple[list[Event], list[int]]) -> None:
    events, queries = trace
    assert_parity(events, queries)


def workload_parity(name: str, hours: float, users: int | None, seed: int) -> None:
    events: list[Event] = list(generate(name, hours=hours, seed=seed, users=users))
    rng = random.Random(seed)
    start, end = to_ms(events[0].ts), to_ms(events[-1].ts)
    queries = sorted(rng.randint(start, end) for _ in range(40))
    queries += [to_ms(e.ts) for e in rng.sample(events, 20)]
    assert_parity(events, queries)


def test_parity_on_the_seed_workload() -> None:
    workload_parity("seed", hours=3, users=None, seed=5)


def test_parity_on_the_habits_workload() -> None:
    workload_parity("habits", hours=48, users=60, seed=5)
