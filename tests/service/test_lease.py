"""The leader lease against real Redis (embedded, and ``REDIS_URL`` where set)."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis

from service.lease import FencedProvider, Leadership, Lease, NotLeader
from service.provider import ProviderNode

TTL_MS = 300


def lease(client: redis.Redis, prefix: str, holder: str, ttl_ms: int = TTL_MS) -> Lease:
    return Lease(client, f"{prefix}leader", ttl_ms=ttl_ms, holder=holder)


def wait_for_expiry(a: Lease) -> None:
    deadline = time.monotonic() + 5
    while a.info().holder is not None:
        assert time.monotonic() < deadline, "the lease never expired"
        time.sleep(0.01)


def test_one_holder_at_a_time(redis_client: redis.Redis, key_prefix: str) -> None:
    a, b = lease(redis_client, key_prefix, "a"), lease(redis_client, key_prefix, "b")
    fence = a.acquire()
    assert fence == 1
    assert b.acquire() is None
    assert a.acquire() is None  # holding already: renew, not acquire
    info = a.info()
    assert info.holder == "a" and info.fence == 1
    assert info.ttl_ms is not None and 0 < info.ttl_ms <= TTL_MS
    assert a.guard(fence) and not b.guard(fence)
    assert not b.renew(fence) and not b.release(fence)  # not b's lease, whatever the token
    assert a.info().holder == "a"


def test_renewing_keeps_the_lease_past_its_ttl(redis_client: redis.Redis, key_prefix: str) -> None:
    a, b = lease(redis_client, key_prefix, "a"), lease(redis_client, key_prefix, "b")
    fence = a.acquire()
    assert fence is not None
    end = time.monotonic() + 3 * TTL_MS / 1000
    while time.monotonic() < end:
        assert a.renew(fence)
        assert b.acquire() is None
        time.sleep(TTL_MS / 1000 / 4)
    assert a.guard(fence)


def test_an_expired_lease_passes_to_the_next_with_a_larger_token(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    a, b = lease(redis_client, key_prefix, "a"), lease(redis_client, key_prefix, "b")
    first = a.acquire()
    assert first is not None
    stopped = time.monotonic()  # a is "killed": it stops renewing
    while (second := b.acquire()) is None:
        assert time.monotonic() - stopped < TTL_MS / 1000 + 1.0, "no hand-over"
        time.sleep(0.01)
    assert time.monotonic() - stopped >= TTL_MS / 1000 * 0.9  # not before the lease expired
    assert second > first
    # The stale holder can neither extend, release nor act on its old term.
    assert not a.renew(first)
    assert not a.release(first)
    assert not a.guard(first)
    assert b.guard(second) and a.info().holder == "b"


def test_tokens_only_grow_and_a_holder_s_old_term_stays_dead(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    a = lease(redis_client, key_prefix, "a", ttl_ms=100)
    tokens = []
    for _ in range(3):
        fence = a.acquire()
        assert fence is not None
        tokens.append(fence)
        wait_for_expiry(a)
    assert tokens == sorted(tokens) and len(set(tokens)) == 3
    # The same holder again, with a term long enough to outlast a loaded machine's pauses:
    # its earlier terms are not the current one.
    again = lease(redis_client, key_prefix, "a", ttl_ms=60_000)
    current = again.acquire()
    assert current is not None and current > tokens[-1]
    assert not again.renew(tokens[-1]) and not again.guard(tokens[-1])
    assert again.renew(current)


def test_release_hands_over_at_once(redis_client: redis.Redis, key_prefix: str) -> None:
    a, b = lease(redis_client, key_prefix, "a", 60_000), lease(redis_client, key_prefix, "b")
    fence = a.acquire()
    assert fence is not None
    assert a.release(fence)
    assert not a.guard(fence)
    assert (b.acquire() or 0) > fence


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_leadership_lapses_locally_before_redis_would_expire_it(
    redis_client: redis.Redis, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeMonotonic()
    a = lease(redis_client, key_prefix, "a", ttl_ms=60_000)
    leadership = Leadership(a, safety=0.2, monotonic=clock)
    assert not leadership.is_leader() and leadership.fence is None
    assert leadership.step()
    fence = leadership.fence
    assert fence is not None and leadership.guard() == fence

    def unreachable(fence: int) -> bool:
        raise redis.ConnectionError("down")

    # Redis unreachable: the term holds until its local deadline (48 s of the 60 s), then
    # lapses, while Redis would keep the key for 12 s more: never two leaders.
    monkeypatch.setattr(a, "renew", unreachable)
    clock.now += 30
    assert leadership.step()
    clock.now += 17.9
    assert leadership.is_leader()
    clock.now += 0.2
    assert not leadership.is_leader() and leadership.fence is None
    with pytest.raises(NotLeader):
        leadership.guard()


def test_leadership_notices_a_lost_term_at_the_next_renew_or_action(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    clock = FakeMonotonic()
    a, b = lease(redis_client, key_prefix, "a", 60_000), lease(redis_client, key_prefix, "b")
    leading = Leadership(a, monotonic=clock)
    assert leading.step()
    fence = leading.fence
    assert fence is not None
    redis_client.delete(a.key)  # e.g. an operator, or an expiry during a long pause
    assert (b.acquire() or 0) > fence
    assert leading.is_leader()  # its own timer does not know yet ...
    with pytest.raises(NotLeader, match="lost"):
        leading.guard()  # ... but the guard in front of every action does
    assert not leading.is_leader()
    again = Leadership(a, monotonic=clock)
    assert not again.step()  # b holds it


class RecordingProvider:
    def __init__(self) -> None:
        self.created = 0
        self.terminated: list[str] = []

    async def create(self) -> str:
        self.created += 1
        return f"node-{self.created}"

    async def terminate(self, node_id: str) -> bool:
        self.terminated.append(node_id)
        return True

    async def list_nodes(self) -> list[ProviderNode] | None:
        return []

    async def aclose(self) -> None:
        return None


def test_fenced_provider_acts_only_for_the_current_term(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    a, b = lease(redis_client, key_prefix, "a", 60_000), lease(redis_client, key_prefix, "b")
    inner = RecordingProvider()
    leadership = Leadership(a)
    fenced = FencedProvider(inner, leadership)

    async def scenario() -> None:
        with pytest.raises(NotLeader):
            await fenced.create()  # not leader yet
        assert leadership.step()
        assert await fenced.create() == "node-1"
        assert await fenced.terminate("node-1")
        assert fenced.last_fence == leadership.fence
        redis_client.delete(a.key)
        assert b.acquire() is not None  # a newer term elsewhere
        with pytest.raises(NotLeader):
            await fenced.create()
        with pytest.raises(NotLeader):
            await fenced.terminate("node-1")

    asyncio.run(scenario())
    assert inner.created == 1 and inner.terminated == ["node-1"]
    assert fenced.actions == {"create": 1, "terminate": 1}


def test_two_replicas_never_lead_together_and_a_killed_leader_is_replaced(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    ttl_s = TTL_MS / 1000
    a = Leadership(lease(redis_client, key_prefix, "a"))
    b = Leadership(lease(redis_client, key_prefix, "b"))

    async def scenario() -> float:
        a.start()
        while not a.is_leader():
            await asyncio.sleep(0.005)
        b.start()
        led = 0
        for _ in range(150):  # 3 lease times, sampled every 6 ms
            assert not (a.is_leader() and b.is_leader())
            led += a.is_leader()
            await asyncio.sleep(ttl_s / 50)
        assert led >= 140  # a keeps it while it renews (a slow thread may skip a beat)
        killed = time.monotonic()
        await a.stop(release=False)  # killed: stops renewing, leaves the key to expire
        while not b.is_leader():
            assert not a.is_leader()
            await asyncio.sleep(0.005)
        took = time.monotonic() - killed
        await b.stop()
        return took

    took = asyncio.run(scenario())
    assert took <= ttl_s + b.renew_every_s + 0.2
    assert a.terms == 1 and b.terms == 1
    assert redis_client.get(f"{key_prefix}leader") is None  # b released on a graceful stop
