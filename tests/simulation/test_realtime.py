"""Publishing workloads on real Redis pub/sub with an accelerated clock."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from features.clock import ScaledClock
from features.events import Channel, UserActivity, UserConnect, UserEvent, encode_payload
from simulation.workloads import generate
from simulation.workloads.realtime import PublishReport, publish_realtime, run_realtime
from simulation.workloads.seed import seed_population

SPEED = 500.0


@pytest.fixture
def subscriber(redis_client: redis.Redis, key_prefix: str) -> Iterator[redis.client.PubSub]:
    pubsub = redis_client.pubsub()
    pubsub.subscribe(*(key_prefix + c.value for c in Channel))
    for _ in Channel:  # wait for the confirmations: then nothing published is missed
        message = pubsub.get_message(timeout=5)
        assert message is not None and message["type"] == "subscribe"
    yield pubsub
    pubsub.close()


def drain(
    pubsub: redis.client.PubSub, expected: int, timeout: float = 5
) -> list[tuple[str, bytes]]:
    received: list[tuple[str, bytes]] = []
    deadline = time.monotonic() + timeout
    while len(received) < expected and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.1)
        if message is not None and message["type"] == "message":
            received.append((message["channel"].decode(), message["data"]))
    extra = pubsub.get_message(timeout=0.2)
    assert extra is None, f"more messages than expected: {extra}"
    return received


def test_publishes_each_event_at_its_time_with_the_go_payload(
    redis_client: redis.Redis, key_prefix: str, subscriber: redis.client.PubSub
) -> None:
    clock = ScaledClock(anchor=time.time(), speed=SPEED)
    start = clock.now()
    hours = 0.04  # 144 virtual s: about 0.3 s of wall time
    events = list(generate("seed", hours=hours, seed=3, start=start))
    assert any(isinstance(e, UserConnect) for e in events)  # the window shows every channel
    stop = threading.Event()
    began = time.monotonic()
    report = publish_realtime(redis_client, clock, events, stop=stop, channel_prefix=key_prefix)
    elapsed = time.monotonic() - began
    # Paced by the clock: the last event waited for its time.
    assert elapsed >= (events[-1].ts - start) / SPEED - 0.01
    assert report.failed == 0 and not report.stopped
    assert report.tally.events == len(events)
    received = drain(subscriber, len(events))
    assert [channel for channel, _ in received] == [key_prefix + e.channel.value for e in events]
    for (_, data), event in zip(received, events, strict=True):
        if isinstance(event, UserActivity):
            stamp = json.loads(data)["timestamp"]
            # Stamped with the clock at publish: not before the event's time, and within
            # 0.25 s of wall time after it (a loaded 2-core machine can be that late).
            assert math.floor(event.ts) <= stamp <= math.floor(event.ts + 0.25 * SPEED)
            expected = f'{{"user_id":"{event.user_id}","timestamp":{stamp}}}'
            assert data == expected.encode()
        else:
            assert data == f'{{"user_id":"{event.user_id}"}}'.encode()
            assert data == encode_payload(event).encode()


def test_run_realtime_generates_from_the_clocks_now(
    redis_client: redis.Redis, key_prefix: str, subscriber: redis.client.PubSub
) -> None:
    clock = ScaledClock(anchor=time.time(), speed=SPEED)
    before = clock.now()
    seen: list[float] = []

    def progress(report: PublishReport, now: float) -> None:
        seen.append(now)

    report = run_realtime(
        redis_client,
        clock,
        "seed",
        seed=9,
        stop=threading.Event(),
        hours=0.03,
        channel_prefix=key_prefix,
        on_progress=progress,
    )
    after = clock.now()
    tally = report.tally
    assert tally.first_ts is not None and tally.last_ts is not None
    assert before <= tally.first_ts <= tally.last_ts <= before + 0.03 * 3600 + 5
    assert after >= tally.last_ts
    assert tally.users <= {u.user_id for u in seed_population(9)}
    assert seen and seen[-1] >= tally.last_ts
    received = drain(subscriber, tally.events)
    assert len(received) == tally.events
    by_channel = {c: sum(ch == key_prefix + c for ch, _ in received) for c in tally.by_channel}
    assert by_channel == dict(tally.by_channel)


def test_a_start_in_the_past_continues_a_history(
    redis_client: redis.Redis, key_prefix: str, subscriber: redis.client.PubSub
) -> None:
    clock = ScaledClock(anchor=time.time(), speed=SPEED)
    history_hours = 0.5
    start = clock.now() - history_hours * 3600
    report = run_realtime(
        redis_client,
        clock,
        "seed",
        seed=4,
        stop=threading.Event(),
        hours=history_hours + 0.03,
        channel_prefix=key_prefix,
        start=start,
    )
    whole = list(generate("seed", hours=history_hours + 0.03, seed=4, start=start))
    history = [e for e in whole if e.ts < start + history_hours * 3600]
    assert report.tally.first_ts is not None and report.tally.first_ts >= history[-1].ts
    received = drain(subscriber, report.tally.events)
    assert len(received) == report.tally.events
    assert report.tally.events < len(whole) - len(history) + 10  # the history was skipped


def test_stop_ends_a_run_promptly(redis_client: redis.Redis, key_prefix: str) -> None:
    clock = ScaledClock()  # real time: the next event may be seconds away
    stop = threading.Event()
    result: list[PublishReport] = []
    worker = threading.Thread(
        target=lambda: result.append(
            run_realtime(
                redis_client, clock, "habits", seed=1, stop=stop, channel_prefix=key_prefix
            )
        )
    )
    worker.start()
    time.sleep(0.3)
    stopped_at = time.monotonic()
    stop.set()
    worker.join(timeout=5)
    assert not worker.is_alive()
    assert time.monotonic() - stopped_at < 1.0
    assert result and result[0].stopped


def test_a_far_event_does_not_delay_stop(redis_client: redis.Redis, key_prefix: str) -> None:
    clock = ScaledClock()
    far = UserConnect(clock.now() + 3600, "u1")
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    began = time.monotonic()
    report = publish_realtime(redis_client, clock, [far], stop=stop, channel_prefix=key_prefix)
    assert time.monotonic() - began < 1.0
    assert report.stopped and report.tally.events == 0


def test_late_events_go_at_once_stamped_with_the_clock(
    redis_client: redis.Redis, key_prefix: str, subscriber: redis.client.PubSub
) -> None:
    clock = ScaledClock()
    now = clock.now()
    events: list[UserEvent] = [
        UserActivity(now - 1000.5, "u1", 123),
        UserConnect(now - 1000, "u1"),
    ]
    began = time.monotonic()
    report = publish_realtime(
        redis_client, clock, events, stop=threading.Event(), channel_prefix=key_prefix
    )
    assert time.monotonic() - began < 0.5
    assert report.tally.events == 2
    (_, activity), (_, connect) = drain(subscriber, 2)
    stamp = json.loads(activity)["timestamp"]
    assert math.floor(now) <= stamp <= math.floor(clock.now())
    assert activity == f'{{"user_id":"u1","timestamp":{stamp}}}'.encode()
    assert connect == b'{"user_id":"u1"}'


def test_redis_errors_are_counted_not_raised() -> None:
    client = redis.Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0))
    clock = ScaledClock()
    now = clock.now()
    events: list[UserEvent] = [UserConnect(now - 1, "u1"), UserActivity(now - 0.5, "u1")]
    report = publish_realtime(client, clock, events, stop=threading.Event())
    assert report.failed == 2 and report.tally.events == 0 and not report.stopped
    client.close()
