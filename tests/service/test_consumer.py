from __future__ import annotations

import redis

from features.eventlog import EventLog, LogKeys
from features.events import Event
from service.consumer import StreamConsumer, entry_key
from tests.features.factories import random_events


def make(client: redis.Redis, prefix: str, name: str, **kwargs: int) -> StreamConsumer:
    consumer = StreamConsumer(EventLog(client, LogKeys(prefix)), "service", name, **kwargs)
    consumer.ensure_group()
    return consumer


def drain(consumer: StreamConsumer, applied: list[Event], watermark: list[str]) -> None:
    """Apply (idempotently, by watermark) and acknowledge until nothing is left."""
    while True:
        delivery = consumer.read()
        if not len(delivery):
            return
        events, ids = delivery.after(watermark[-1] if watermark else None)
        applied.extend(events)
        if ids:
            watermark.append(ids[-1])
        consumer.ack(delivery.all_ids)


def test_every_event_once_in_order(redis_client: redis.Redis, key_prefix: str) -> None:
    events = random_events(2500, seed=1)
    EventLog(redis_client, LogKeys(key_prefix)).append_many(events)
    consumer = make(redis_client, key_prefix, "a", count=400)
    applied: list[Event] = []
    drain(consumer, applied, [])
    assert applied == events
    assert consumer.pending() == 0


def test_a_new_consumer_takes_over_what_a_dead_one_left(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    events = random_events(1000, seed=2)
    EventLog(redis_client, LogKeys(key_prefix)).append_many(events)
    dead = make(redis_client, key_prefix, "dead", count=300)
    applied: list[Event] = []
    watermark: list[str] = []
    first = dead.read()  # applied, then the process dies before acknowledging
    applied.extend(first.events)
    watermark.append(first.ids[-1])
    dead.read()  # a second batch delivered and never applied nor acknowledged
    heir = make(redis_client, key_prefix, "heir", count=300, claim_idle_ms=0)
    drain(heir, applied, watermark)
    assert applied == events  # nothing lost, nothing applied twice
    assert heir.pending() == 0


def test_a_restarted_consumer_resumes_with_its_own_pending(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    events = random_events(600, seed=3)
    log = EventLog(redis_client, LogKeys(key_prefix))
    log.append_many(events[:400])
    before = make(redis_client, key_prefix, "svc", count=250)
    delivered = before.read()
    assert len(delivered) == 250
    again = make(redis_client, key_prefix, "svc", count=250)  # same name, after a restart
    applied: list[Event] = []
    drain(again, applied, [])
    log.append_many(events[400:])
    drain(again, applied, [])
    assert applied == events


def test_bad_entries_are_dead_lettered_and_acknowledged(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    log = EventLog(redis_client, LogKeys(key_prefix))
    good = random_events(3, seed=4)
    log.append_batch(good[:2])
    redis_client.xadd(log.keys.stream, {"channel": "user:connect", "payload": "not json"})
    redis_client.xadd(log.keys.stream, {"channel": "user:nope", "payload": "{}"})
    log.append_batch(good[2:])
    consumer = make(redis_client, key_prefix, "a")
    applied: list[Event] = []
    drain(consumer, applied, [])
    assert [e.ts for e in applied][:2] == [e.ts for e in good[:2]]
    assert len(applied) == 3
    reasons = sorted(letter.reason.value for letter in log.dead_letters())
    assert reasons == ["not_json", "unknown_channel"]
    assert consumer.pending() == 0


def test_entry_keys_order_like_redis() -> None:
    assert entry_key("1732492800000-10") > entry_key("1732492800000-9")
    assert entry_key("1732492800001-0") > entry_key("1732492800000-99")


def test_a_starting_consumer_takes_over_every_pending_entry_in_log_order(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    events = random_events(900, seed=5)
    log = EventLog(redis_client, LogKeys(key_prefix))
    log.append_many(events[:600])
    first = make(redis_client, key_prefix, "first", count=200)
    second = make(redis_client, key_prefix, "second", count=200)
    applied: list[Event] = []
    watermark: list[str] = []
    delivered = first.read()  # applied and saved, never acknowledged: then the process died
    applied.extend(delivered.events)
    watermark.append(delivered.ids[-1])
    second.read()  # handed to a consumer that died before applying anything
    first.read()
    heir = make(redis_client, key_prefix, "heir", count=250)  # claims only after 30 s idle
    assert heir.take_over() == 600
    log.append_many(events[600:])
    drain(heir, applied, watermark)
    assert applied == events
    assert heir.pending() == 0
