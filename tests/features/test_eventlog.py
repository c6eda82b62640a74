from __future__ import annotations

from typing import Any

import redis

from features.eventlog import DeadLetter, EventLog, LogKeys, Retention
from features.events import (
    Event,
    Rejection,
    UserActivity,
    UserConnect,
    UserDisconnect,
)
from tests.features.factories import T0, random_events


def make_log(client: redis.Redis, prefix: str, retention: Retention | None = None) -> EventLog:
    return EventLog(client, LogKeys(prefix), retention=retention)


def all_events(
    log: EventLog, since: float | None = None, until: float | None = None
) -> list[Event]:
    return [event for batch in log.read(since, until) for event in batch.events]


def test_append_and_read_back_in_order(redis_client: redis.Redis, key_prefix: str) -> None:
    log = make_log(redis_client, key_prefix)
    events = random_events(5000)
    assert log.append_many(events, batch_size=700) == 5000
    assert log.length() == 5000
    assert all_events(log) == events
    assert log.stats()["appended"] == 5000


def test_entry_ids_follow_event_time(redis_client: redis.Redis, key_prefix: str) -> None:
    log = make_log(redis_client, key_prefix)
    log.append_many(random_events(500))
    ids = [
        (int(ms), int(seq))
        for batch in log.read()
        for ms, _, seq in (entry_id.partition("-") for entry_id in batch.ids)
    ]
    assert len(ids) == 500
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    for batch in log.read():
        for entry_id, event in zip(batch.ids, batch.events, strict=True):
            assert int(entry_id.partition("-")[0]) == int(event.ts * 1000)


def test_late_events_keep_their_time(redis_client: redis.Redis, key_prefix: str) -> None:
    log = make_log(redis_client, key_prefix)
    events: list[Event] = [
        UserConnect(T0 + 10.6, "u1"),
        UserActivity(T0 + 10.0, "u2", int(T0 + 10)),  # whole-second stamp, arrives later
        UserActivity(T0 + 11.0, "u3", int(T0 + 11)),
    ]
    log.append_batch(events)
    assert all_events(log) == events
    assert log.stats()["max_lag_ms"] == 600
    assert all_events(log, since=T0 + 10.0, until=T0 + 10.5) == [events[1]]


def test_time_range_reads_are_exact(redis_client: redis.Redis, key_prefix: str) -> None:
    log = make_log(redis_client, key_prefix)
    events = random_events(3000, seed=3)
    log.append_many(events)
    since, until = events[700].ts, events[2100].ts
    expected = [e for e in events if since <= e.ts < until]
    assert all_events(log, since, until) == expected
    assert all_events(log, since=since) == [e for e in events if e.ts >= since]
    assert all_events(log, until=until) == [e for e in events if e.ts < until]


def test_events_written_directly_to_the_stream(redis_client: redis.Redis, key_prefix: str) -> None:
    log = make_log(redis_client, key_prefix)
    stream = log.keys.stream
    redis_client.xadd(
        stream, {"channel": "user:activity", "payload": '{"user_id":"u1","timestamp":1732492800}'}
    )
    redis_client.xadd(stream, {"channel": "user:connect", "payload": '{"user_id":"u1"}'})
    redis_client.xadd(
        stream, {"ts": "1732492801.5", "channel": "user:disconnect", "payload": '{"user_id":"u1"}'}
    )
    redis_client.xadd(stream, {"channel": "user:connect", "payload": "{}"})
    redis_client.xadd(stream, {"payload": '{"user_id":"u1"}'})
    batches = list(log.read())
    events = [event for batch in batches for event in batch.events]
    rejected = [bad.error.reason for batch in batches for bad in batch.rejected]
    entries: Any = redis_client.xrange(stream)
    arrival = int(entries[1][0].partition(b"-")[0]) / 1000
    assert events == [
        UserActivity(1732492800.0, "u1", 1732492800),
        UserConnect(arrival, "u1"),
        UserDisconnect(1732492801.5, "u1"),
    ]
    assert rejected == [Rejection.MISSING_FIELD, Rejection.MISSING_FIELD]


def test_appending_after_direct_writes_keeps_ids_increasing(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    log = make_log(redis_client, key_prefix)
    redis_client.xadd(log.keys.stream, {"channel": "user:connect", "payload": '{"user_id":"u"}'})
    old = UserConnect(T0, "u9")  # older than the wall-clock ID just written
    log.append(old)
    assert all_events(log)[-1] == old


def test_retention_by_length(redis_client: redis.Redis, key_prefix: str) -> None:
    log = make_log(redis_client, key_prefix, retention=Retention(max_len=200))
    events = random_events(2000, seed=5)
    log.append_many(events, batch_size=250)
    kept = all_events(log)
    # Trimming is approximate (whole radix-tree nodes of 100 entries): at most one node extra.
    assert 200 <= len(kept) <= 300
    assert kept == events[-len(kept) :]


def test_retention_by_age_uses_event_time(redis_client: redis.Redis, key_prefix: str) -> None:
    log = make_log(redis_client, key_prefix, retention=Retention(max_age_s=3600))
    events: list[Event] = [UserActivity(T0 + i * 10.0, "u", int(T0 + i * 10)) for i in range(1080)]
    log.append_many(events, batch_size=100)  # three hours, one event every 10 s
    kept = all_events(log)
    newest = events[-1].ts
    assert kept[-1] == events[-1]
    assert all(e.ts >= newest - 3600 - 100 * 10 for e in kept)  # at most one node extra
    assert len(kept) < 600


def test_dead_letters_are_kept_and_counted(redis_client: redis.Redis, key_prefix: str) -> None:
    log = make_log(redis_client, key_prefix)
    log.dead_letter(
        [
            DeadLetter(Rejection.NOT_JSON, "bad", "pubsub:user:connect", "{oops", T0),
            DeadLetter(Rejection.NOT_JSON, "bad", "pubsub:user:connect", "x" * 5000, T0 + 1),
            DeadLetter(Rejection.UNKNOWN_STATUS, "status 'x'", "trace:f:3", "{}", T0 + 2),
        ]
    )
    letters = log.dead_letters()
    assert [letter.reason for letter in letters] == [
        Rejection.UNKNOWN_STATUS,
        Rejection.NOT_JSON,
        Rejection.NOT_JSON,
    ]
    assert letters[2].raw == "{oops" and letters[0].source == "trace:f:3"
    assert len(letters[1].raw) == 2048
    stats = log.stats()
    assert stats["dead:not_json"] == 2 and stats["dead:unknown_status"] == 1
    assert log.length() == 0


def test_event_at_time_zero_gets_a_valid_id(redis_client: redis.Redis, key_prefix: str) -> None:
    log = make_log(redis_client, key_prefix)
    log.append_batch([UserConnect(0.0, "u"), UserDisconnect(0.0, "u")])
    assert all_events(log) == [UserConnect(0.0, "u"), UserDisconnect(0.0, "u")]
