"""No feature at a cutoff may see an event after it: change the future, nothing moves."""

from __future__ import annotations

import random

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from features.batch import BatchHistory, snapshots
from features.definitions import compute_features
from features.events import Event, UserActivity, UserConnect, UserDisconnect
from features.labels import connects_within
from features.table import EventTable, to_ms
from simulation.workloads import generate


def features_at(events: list[Event], users: list[str], t_ms: list[int]) -> np.ndarray:
    table = EventTable.from_events(events)
    index = [table.user_index(u) for u in users]
    return compute_features(snapshots(table, index, t_ms))


def rewrite_future(events: list[Event], cutoff: float, rng: random.Random) -> list[Event]:
    """Keep the past; drop, retype and add events after ``cutoff``."""
    past = [e for e in events if e.ts <= cutoff]
    future: list[Event] = []
    for event in events:
        if event.ts <= cutoff or rng.random() < 0.3:
            continue
        user = event.user_id  # type: ignore[union-attr]
        kind = rng.choice([UserActivity, UserConnect, UserDisconnect])
        future.append(
            UserActivity(event.ts, user, int(event.ts))
            if kind is UserActivity
            else kind(event.ts, user)
        )
    users = sorted({e.user_id for e in events})  # type: ignore[union-attr]
    for _ in range(50):
        ts = cutoff + 0.001 + rng.random() * 600
        future.append(UserConnect(ts, rng.choice(users)))
    return past + sorted(future, key=lambda e: e.ts)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000))
def test_changing_the_future_changes_no_feature(seed: int) -> None:
    rng = random.Random(seed)
    events: list[Event] = list(generate("seed", hours=2, seed=seed % 7))
    cutoff = events[rng.randrange(len(events))].ts
    t = to_ms(cutoff)
    users = sorted({e.user_id for e in events if e.ts <= cutoff})  # type: ignore[union-attr]
    before = features_at(events, users, [t] * len(users))
    after = features_at(rewrite_future(events, cutoff, rng), users, [t] * len(users))
    assert np.array_equal(before, after)


def test_labels_look_only_inside_the_horizon() -> None:
    t0 = 1_732_492_800.0
    events: list[Event] = [
        UserActivity(t0, "a", int(t0)),
        UserConnect(t0 + 30.0, "a"),
        UserDisconnect(t0 + 90.0, "a"),
        UserActivity(t0, "b", int(t0)),
        UserConnect(t0 + 40.001, "b"),
    ]
    table = EventTable.from_events(events)
    a, b = table.user_index("a"), table.user_index("b")
    cutoffs = [to_ms(t0), to_ms(t0), to_ms(t0 + 30.0), to_ms(t0 + 29.999)]
    labels = connects_within(BatchHistory(table), [a, b, a, a], cutoffs, horizon_ms=40_000)
    # b connects 40.001 s later: outside 40 s; a's connect at +30 is not after the cutoff +30
    assert labels.tolist() == [True, False, False, True]
