from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import redis

from features.bridge import Bridge, BridgeStats
from features.eventlog import EventLog, LogKeys
from features.events import (
    NodeStatus,
    NodeStatusChanged,
    Rejection,
    UserActivity,
    UserConnect,
    UserDisconnect,
)

NOW = 1_732_800_000.0
UID = "9b2d7c1e-4f6a-4b8e-a1d3-5c7e9f0a2b4d"


@dataclass
class FixedClock:
    t: float = NOW

    def now(self) -> float:
        return self.t

    def wall_delay(self, seconds: float) -> float:
        return seconds


@contextmanager
def running(bridge: Bridge, expected: int) -> Iterator[threading.Thread]:
    result: list[BridgeStats] = []
    thread = threading.Thread(target=lambda: result.append(bridge.run(max_messages=expected)))
    thread.start()
    assert bridge.subscribed.wait(5), "bridge did not subscribe"
    yield thread
    thread.join(timeout=10)
    assert not thread.is_alive(), "bridge did not stop after its messages"


@dataclass
class SteppingClock:
    """Each reading 0.2 s after the last: one message arrives per reading."""

    t: float = NOW + 0.1

    def now(self) -> float:
        self.t += 0.2
        return self.t

    def wall_delay(self, seconds: float) -> float:
        return seconds


def test_activity_of_the_arrivals_second_keeps_arrival_order(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    """The seed's activity carries a whole-second ``timestamp``; logged
    with it, an activity arriving at 0.5 s into a second came before a connect that arrived
    at 0.3 s. Stamped with its arrival, the log stays in time order."""
    log = EventLog(redis_client, LogKeys(key_prefix))
    bridge = Bridge(redis_client, log, channel_prefix=key_prefix, clock=SteppingClock())
    second = int(NOW)
    messages = [
        ("user:connect", '{"user_id":"a"}'),  # arrives at NOW + 0.3
        ("user:activity", f'{{"user_id":"b","timestamp":{second}}}'),  # NOW + 0.5
        ("user:activity", f'{{"user_id":"c","timestamp":{second - 5}}}'),  # NOW + 0.7
        ("user:connect", '{"user_id":"b"}'),  # NOW + 0.9
    ]
    with running(bridge, len(messages)):
        for channel, payload in messages:
            assert redis_client.publish(key_prefix + channel, payload) == 1
    events = [event for batch in log.read() for event in batch.events]
    assert events == [
        UserConnect(NOW + 0.3, "a"),
        UserActivity(NOW + 0.5, "b", second),  # before the fix: at NOW, ahead of the connect
        UserActivity(float(second - 5), "c", second - 5),  # another second: the publisher's
        UserConnect(NOW + 0.9, "b"),
    ]


def test_bridge_logs_the_seed_payloads(redis_client: redis.Redis, key_prefix: str) -> None:
    log = EventLog(redis_client, LogKeys(key_prefix))
    bridge = Bridge(redis_client, log, channel_prefix=key_prefix, clock=FixedClock())
    seed_messages = [
        ("user:activity", f'{{"user_id":"{UID}","timestamp":1732799999}}'),
        ("user:connect", f'{{"user_id":"{UID}"}}'),
        ("node:status", '{"node_id":"node-1a2b3c4d","status":"booting"}'),
        ("node:status", '{"node_id":"node-1a2b3c4d","status":"ready"}'),
        ("user:disconnect", f'{{"user_id":"{UID}"}}'),
    ]
    with running(bridge, len(seed_messages)):
        for channel, payload in seed_messages:
            assert redis_client.publish(key_prefix + channel, payload) == 1
    events = [event for batch in log.read() for event in batch.events]
    assert events == [
        UserActivity(1732799999.0, UID, 1732799999),
        UserConnect(NOW, UID),
        NodeStatusChanged(NOW, "node-1a2b3c4d", NodeStatus.BOOTING),
        NodeStatusChanged(NOW, "node-1a2b3c4d", NodeStatus.READY),
        UserDisconnect(NOW, UID),
    ]
    assert bridge.stats.appended == 5 and bridge.stats.dead_total == 0


def test_bad_messages_go_to_dead_letters_and_good_ones_stay(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    log = EventLog(redis_client, LogKeys(key_prefix))
    bridge = Bridge(redis_client, log, channel_prefix=key_prefix, clock=FixedClock())
    messages = [
        ("user:connect", '{"user_id":"u1"}', None),
        ("user:connect", "not json", Rejection.NOT_JSON),
        ("user:activity", '{"user_id":"u2","timestamp":1732799000}', None),
        ("user:activity", '{"user_id":"u2","timestamp":"yesterday"}', Rejection.WRONG_TYPE),
        ("user:activity", '{"user_id":"u2","timestamp":1900000000}', Rejection.FUTURE_TIMESTAMP),
        ("node:status", '{"node_id":"n1","status":"exploded"}', Rejection.UNKNOWN_STATUS),
        ("user:disconnect", "{}", Rejection.MISSING_FIELD),
        ("user:disconnect", '{"user_id":"' + "x" * 5000 + '"}', Rejection.TOO_LARGE),
        ("user:disconnect", '[{"user_id":"u1"}]', Rejection.NOT_OBJECT),
        ("user:disconnect", '{"user_id":"u1"}', None),
    ]
    with running(bridge, len(messages)):
        for channel, payload, _ in messages:
            redis_client.publish(key_prefix + channel, payload)
    events = [event for batch in log.read() for event in batch.events]
    assert events == [
        UserConnect(NOW, "u1"),
        UserActivity(1732799000.0, "u2", 1732799000),
        UserDisconnect(NOW, "u1"),
    ]
    expected_reasons = [reason for _, _, reason in messages if reason is not None]
    letters = log.dead_letters()
    assert [letter.reason for letter in reversed(letters)] == expected_reasons
    assert letters[-1].raw == "not json"
    assert letters[-1].source == f"pubsub:{key_prefix}user:connect"
    counts = log.stats()
    for reason in set(expected_reasons):
        assert counts[f"dead:{reason.value}"] == expected_reasons.count(reason)
    assert bridge.stats.dead_total == len(expected_reasons)


def test_bridge_stops_when_asked(redis_client: redis.Redis, key_prefix: str) -> None:
    bridge = Bridge(
        redis_client, EventLog(redis_client, LogKeys(key_prefix)), channel_prefix=key_prefix
    )
    stop = threading.Event()
    thread = threading.Thread(target=bridge.run, args=(stop,), kwargs={"poll_s": 0.05})
    thread.start()
    assert bridge.subscribed.wait(5)
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()


def test_bridge_ignores_unprefixed_channels(redis_client: redis.Redis, key_prefix: str) -> None:
    log = EventLog(redis_client, LogKeys(key_prefix))
    bridge = Bridge(redis_client, log, channel_prefix=key_prefix, clock=FixedClock())
    with running(bridge, 1):
        redis_client.publish("other:" + key_prefix + "user:connect", '{"user_id":"x"}')
        redis_client.publish(key_prefix + "user:connect", '{"user_id":"mine"}')
    assert [event for batch in log.read() for event in batch.events] == [UserConnect(NOW, "mine")]
