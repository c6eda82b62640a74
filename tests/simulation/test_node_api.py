"""The node API over a real socket, with real Redis, on a fast clock.

uvicorn serves the app in a background thread; the test talks HTTP with httpx and
listens on the (prefixed) ``node:status`` channel with its own Redis connection. The
clock runs 50 times faster than the wall, so a 10-29 s boot takes 0.2-0.58 s.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
import redis
import redis.asyncio
from fastapi import FastAPI

from features.clock import ScaledClock
from simulation.nodes.api import create_node_api, node_api_state
from simulation.nodes.boot import UniformBoot
from simulation.nodes.fleet import NodeFleet
from simulation.nodes.userfeed import UserFeed
from simulation.nodes.usertime import UserTime
from tests.servers import serve

SPEED = 50.0
SEED = 20240601
BOOT = UniformBoot(10, 29)
SLACK_S = 10.0
"""Clock seconds allowed for delivery and scheduling (0.2 s of wall time)."""


class Listener:
    """A subscription on one channel that stamps each message with the clock."""

    def __init__(self, client: redis.Redis, channel: str, clock: ScaledClock) -> None:
        self.clock = clock
        self.pubsub = client.pubsub()
        self.pubsub.subscribe(channel)
        confirmation = self.pubsub.get_message(timeout=5)
        assert confirmation is not None and confirmation["type"] == "subscribe"

    def next(self, timeout: float = 3.0) -> tuple[float, bytes] | None:
        message = self.pubsub.get_message(timeout=timeout)
        if message is None:
            return None
        assert message["type"] == "message"
        return self.clock.now(), message["data"]

    def close(self) -> None:
        self.pubsub.close()


@dataclass
class Running:
    url: str
    app: FastAPI
    clock: ScaledClock
    status: Listener
    twin: NodeFleet
    """A fleet with the same seed: predicts the ids and boot times the API will use."""


@pytest.fixture
def clock() -> ScaledClock:
    return ScaledClock(anchor=time.time(), speed=SPEED)


@pytest.fixture
def running(
    redis_url: str, redis_client: redis.Redis, key_prefix: str, clock: ScaledClock
) -> Iterator[Running]:
    client = redis.asyncio.from_url(redis_url)
    app = create_node_api(
        NodeFleet(BOOT, random.Random(SEED)), client, clock=clock, channel_prefix=key_prefix
    )
    status = Listener(redis_client, f"{key_prefix}node:status", clock)
    try:
        with serve(app, client) as url:
            yield Running(url, app, clock, status, NodeFleet(BOOT, random.Random(SEED)))
    finally:
        status.close()


def payload(node_id: str, status: str) -> bytes:
    return b'{"node_id":"' + node_id.encode() + b'","status":"' + status.encode() + b'"}'


def test_health(running: Running) -> None:
    response = httpx.get(f"{running.url}/")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "service": "node-api"}


def test_lifecycle_booting_ready_terminated(running: Running) -> None:
    expected = running.twin.create(0.0)
    started = running.clock.now()
    response = httpx.post(f"{running.url}/api/nodes")
    assert response.status_code == 202
    assert response.json() == {"id": expected.id}
    node_id = expected.id

    booting = running.status.next()
    assert booting is not None and booting[1] == payload(node_id, "booting")
    ready = running.status.next()
    assert ready is not None and ready[1] == payload(node_id, "ready")
    measured = ready[0] - started
    assert BOOT.low <= expected.boot_s <= measured <= expected.boot_s + SLACK_S
    assert measured <= BOOT.high + SLACK_S

    [listed] = httpx.get(f"{running.url}/api/nodes").json()
    assert listed["id"] == node_id and listed["status"] == "ready"
    assert started <= listed["created_at"] <= booting[0]
    assert listed["ready_at"] - listed["created_at"] == expected.boot_s
    assert listed["terminated_at"] is None

    response = httpx.delete(f"{running.url}/api/nodes/{node_id}")
    assert response.status_code == 202
    terminated = running.status.next()
    assert terminated is not None and terminated[1] == payload(node_id, "terminated")

    # a second delete: 202 again, no second event, no more node time
    before = httpx.get(f"{running.url}/api/efficiency").json()["total_node_time_seconds"]
    assert httpx.delete(f"{running.url}/api/nodes/{node_id}").status_code == 202
    assert running.status.next(timeout=0.3) is None
    after = httpx.get(f"{running.url}/api/efficiency").json()["total_node_time_seconds"]
    assert after == before
    assert before == pytest.approx(terminated[0] - started, abs=SLACK_S)


def test_unknown_node_is_404(running: Running) -> None:
    response = httpx.delete(f"{running.url}/api/nodes/node-00000000")
    assert response.status_code == 404
    assert running.status.next(timeout=0.2) is None


def test_terminated_while_booting_never_becomes_ready(running: Running) -> None:
    node_id = httpx.post(f"{running.url}/api/nodes").json()["id"]
    assert httpx.delete(f"{running.url}/api/nodes/{node_id}").status_code == 202
    messages = [running.status.next(), running.status.next()]
    assert [m[1] for m in messages if m] == [
        payload(node_id, "booting"),
        payload(node_id, "terminated"),
    ]
    # wait past the longest boot: no "ready" comes
    assert running.status.next(timeout=(BOOT.high + SLACK_S) / SPEED) is None
    [listed] = httpx.get(f"{running.url}/api/nodes").json()
    assert listed["status"] == "terminated" and listed["ready_at"] is None


def test_listing_and_ready_order(running: Running) -> None:
    expected = [running.twin.create(0.0) for _ in range(4)]
    ids = [httpx.post(f"{running.url}/api/nodes").json()["id"] for _ in range(4)]
    assert ids == [n.id for n in expected]
    messages = [running.status.next() for _ in range(8)]
    data = [json.loads(m[1]) for m in messages if m]
    assert [d["node_id"] for d in data[:4]] == ids
    assert {d["status"] for d in data[:4]} == {"booting"}
    listed = httpx.get(f"{running.url}/api/nodes").json()
    assert [n["id"] for n in listed] == ids
    # ready announced in order of boot end
    assert {d["status"] for d in data[4:]} == {"ready"}
    by_ready_at = [n["id"] for n in sorted(listed, key=lambda n: n["ready_at"])]
    assert [d["node_id"] for d in data[4:]] == by_ready_at
    assert set(listed[0]) == {"id", "status", "created_at", "ready_at", "terminated_at"}
    for node, item in zip(expected, listed, strict=True):
        assert item["status"] == "ready"
        assert item["ready_at"] - item["created_at"] == node.boot_s


class Scripted:
    """Boot times from a list, to check the boot timer is woken by a shorter boot."""

    def __init__(self, boots: list[float]) -> None:
        self.boots = list(boots)
        self.low, self.high = min(boots), max(boots)

    def sample(self, rng: random.Random) -> float:
        return self.boots.pop(0)


@pytest.mark.slow
def test_a_shorter_boot_created_later_is_ready_first(
    redis_url: str, redis_client: redis.Redis, key_prefix: str, clock: ScaledClock
) -> None:
    client = redis.asyncio.from_url(redis_url)
    # 100 s against 5 s: two wall seconds apart, so a slow machine between the two
    # requests cannot let the slow node finish before the fast one starts
    fleet = NodeFleet(Scripted([100.0, 5.0]), random.Random(1))
    app = create_node_api(fleet, client, clock=clock, channel_prefix=key_prefix)
    status = Listener(redis_client, f"{key_prefix}node:status", clock)
    with serve(app, client) as url:
        slow = httpx.post(f"{url}/api/nodes").json()["id"]
        fast = httpx.post(f"{url}/api/nodes").json()["id"]
        started = clock.now()
        data = []
        for _ in range(4):
            message = status.next(timeout=5.0)
            assert message is not None
            data.append((message[0], json.loads(message[1])))
    status.close()
    assert [(d["node_id"], d["status"]) for _, d in data] == [
        (slow, "booting"),
        (fast, "booting"),
        (fast, "ready"),
        (slow, "ready"),
    ]
    assert data[2][0] - started <= 5.0 + SLACK_S  # not held back until the slow one


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_efficiency_from_user_events(running: Running, redis_client: redis.Redis) -> None:
    prefix = node_api_state(running.app).live.channel.removesuffix("node:status")
    connect, disconnect = f"{prefix}user:connect", f"{prefix}user:disconnect"
    subscribed = [(connect.encode(), 1), (disconnect.encode(), 1)]
    wait_for(lambda: redis_client.pubsub_numsub(connect, disconnect) == subscribed)
    feed = node_api_state(running.app).feed
    assert feed is not None

    empty = httpx.get(f"{running.url}/api/efficiency").json()
    assert empty == {
        "total_user_time_seconds": 0.0,
        "total_node_time_seconds": 0.0,
        "efficiency_percentage": 0.0,
        "user_count": 0,
        "node_count": 0,
    }

    created = running.clock.now()
    node_id = httpx.post(f"{running.url}/api/nodes").json()["id"]
    t_connect = running.clock.now()
    redis_client.publish(connect, '{"user_id":"u1"}')
    time.sleep(0.1)
    t_disconnect = running.clock.now()
    redis_client.publish(disconnect, '{"user_id":"u1"}')
    redis_client.publish(connect, "not json")
    redis_client.publish(disconnect, '{"uid":"u2"}')
    redis_client.publish(disconnect, '{"user_id":"never-connected"}')
    wait_for(lambda: feed.stats.received == 5)
    assert httpx.delete(f"{running.url}/api/nodes/{node_id}").status_code == 202
    terminated = running.clock.now()

    report = httpx.get(f"{running.url}/api/efficiency").json()
    assert set(report) == {
        "total_user_time_seconds",
        "total_node_time_seconds",
        "efficiency_percentage",
        "user_count",
        "node_count",
    }
    assert report["user_count"] == 1 and report["node_count"] == 1
    user_s, node_s = report["total_user_time_seconds"], report["total_node_time_seconds"]
    assert user_s == pytest.approx(t_disconnect - t_connect, abs=SLACK_S / 2)
    assert user_s > 0
    assert 0 < node_s <= terminated - created
    assert node_s >= user_s
    assert report["efficiency_percentage"] == pytest.approx(user_s / node_s * 100)
    assert dict(feed.stats.bad) == {"not_json": 1, "missing_field": 1}
    assert feed.stats.applied == 2
    assert node_api_state(running.app).users.orphan_disconnects == 1

    # closed sessions and terminated nodes stop counting; an open session goes on
    time.sleep(0.05)
    assert httpx.get(f"{running.url}/api/efficiency").json() == report
    redis_client.publish(connect, '{"user_id":"u2"}')
    wait_for(lambda: feed.stats.received == 6)
    time.sleep(0.05)
    later = httpx.get(f"{running.url}/api/efficiency").json()
    assert later["user_count"] == 2
    assert later["total_user_time_seconds"] > user_s


def test_publish_errors_never_fail_a_request(clock: ScaledClock) -> None:
    published: list[tuple[str, str]] = []

    async def flaky(channel: str, message: str) -> None:
        if len(published) == 0 and "booting" in message:
            published.append(("failed", message))
            raise ConnectionError("redis is down")
        published.append((channel, message))

    fleet = NodeFleet(UniformBoot(10, 10), random.Random(5))
    app = create_node_api(fleet, publish=flaky, clock=clock, channel_prefix="x:")
    with serve(app) as url:
        first = httpx.post(f"{url}/api/nodes")
        second = httpx.post(f"{url}/api/nodes")
        assert first.status_code == second.status_code == 202
        wait_for(lambda: len(published) == 4)
    live = node_api_state(app).live
    assert live.stats.errors == 1 and live.stats.published == 3
    a, b = first.json()["id"], second.json()["id"]
    assert published[1:] == [
        ("x:node:status", f'{{"node_id":"{b}","status":"booting"}}'),
        ("x:node:status", f'{{"node_id":"{a}","status":"ready"}}'),
        ("x:node:status", f'{{"node_id":"{b}","status":"ready"}}'),
    ]
    assert node_api_state(app).feed is None


def test_needs_a_client_or_a_publisher() -> None:
    with pytest.raises(ValueError, match="Redis client or a publish callable"):
        create_node_api(NodeFleet(BOOT, random.Random(1)))


def test_feed_handles_messages_without_redis(clock: ScaledClock) -> None:
    users = UserTime()
    client = redis.asyncio.Redis()  # never connects: handle() does no I/O
    feed = UserFeed(client, users, clock, channel_prefix="p:")
    feed.handle(b"p:user:connect", b'{"user_id":"u1","extra":1}')
    feed.handle("p:user:connect", b"\xff")
    feed.handle("user:connect", b'{"user_id":"u9"}')  # not our prefix
    feed.handle("p:user:disconnect", '{"user_id":""}')
    assert users.connected() == {"u1"}
    assert feed.stats.received == 4 and feed.stats.applied == 1
    assert dict(feed.stats.bad) == {"not_utf8": 1, "unknown_channel": 1, "empty_field": 1}
    assert feed.stats.bad_total == 3


def test_a_terminated_node_is_listed_for_a_while_then_not(
    redis_url: str, key_prefix: str, clock: ScaledClock
) -> None:
    client = redis.asyncio.from_url(redis_url)
    for_s = 60.0  # clock seconds: 1.2 s of wall time
    app = create_node_api(
        NodeFleet(BOOT, random.Random(SEED)),
        client,
        clock=clock,
        channel_prefix=key_prefix,
        listed_terminated_s=for_s,
    )
    with serve(app, client) as url:
        kept, gone = (httpx.post(f"{url}/api/nodes").json()["id"] for _ in range(2))
        assert httpx.delete(f"{url}/api/nodes/{gone}").status_code == 202
        listed = {n["id"]: n["status"] for n in httpx.get(f"{url}/api/nodes").json()}
        assert listed == {kept: "booting", gone: "terminated"}
        terminated_at = node_api_state(app).live.fleet.nodes()[1].terminated_at
        assert terminated_at is not None
        time.sleep(max(0.0, (terminated_at + for_s - clock.now()) / SPEED) + 0.2)
        assert [n["id"] for n in httpx.get(f"{url}/api/nodes").json()] == [kept]
        # still known: a repeated delete answers as before, and it still counted
        assert httpx.delete(f"{url}/api/nodes/{gone}").status_code == 202
        assert httpx.get(f"{url}/api/efficiency").json()["node_count"] == 2
