"""Event sequences for tests."""

from __future__ import annotations

import random

import redis

from features.eventlog import EventLog, LogKeys
from features.events import (
    Event,
    NodeStatus,
    NodeStatusChanged,
    UserActivity,
    UserConnect,
    UserDisconnect,
)

T0 = 1_732_492_800.0


def random_events(n: int, seed: int = 0) -> list[Event]:
    rng = random.Random(seed)
    events: list[Event] = []
    ts = T0
    for _ in range(n):
        ts += rng.choice([0.0, 0.001, 0.3, 1.7, 25.0])
        kind = rng.randrange(4)
        user = f"u{rng.randrange(20)}"
        if kind == 0:
            events.append(UserActivity(ts, user, int(ts)))
        elif kind == 1:
            events.append(UserConnect(ts, user))
        elif kind == 2:
            events.append(UserDisconnect(ts, user))
        else:
            events.append(NodeStatusChanged(ts, f"node-{rng.randrange(99)}", NodeStatus.READY))
    return events


def logged(client: redis.Redis, prefix: str, events: list[Event]) -> EventLog:
    """An event log under ``prefix`` holding ``events``."""
    log = EventLog(client, LogKeys(prefix))
    log.append_many(events)
    return log
