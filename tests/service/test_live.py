"""The live shell against real Redis, the in-process simulated node API and a fast clock."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import redis
import redis.asyncio

from features.bridge import Bridge
from features.clock import ScaledClock
from features.eventlog import EventLog, LogKeys
from features.events import Event, UserActivity, UserConnect, UserDisconnect
from features.online import OnlineFeatures
from models.heuristic import HeuristicScorer
from service.config import ServiceConfig
from service.consumer import StreamConsumer
from service.engine import Engine
from service.live import LiveOptions, LiveService
from service.pool import NodeState
from service.state_store import StateStore
from simulation.nodes.boot import UniformBoot
from simulation.nodes.fleet import NodeFleet
from simulation.nodes.live import LiveFleet
from simulation.nodes.provider import InProcessNodes

SPEED = 50.0  # a 10-29 s boot takes 0.2-0.6 s; a 10 s tick 0.2 s


@contextmanager
def bridged(client: redis.Redis, log: EventLog, prefix: str) -> Iterator[None]:
    """Node status announcements (pub/sub) into the event log, as `provisioner bridge`."""
    bridge = Bridge(client, log, channel_prefix=prefix)
    stop = threading.Event()
    thread = threading.Thread(target=bridge.run, args=(stop,), kwargs={"poll_s": 0.05})
    thread.start()
    assert bridge.subscribed.wait(5)
    try:
        yield
    finally:
        stop.set()
        thread.join(5)


@asynccontextmanager
async def live_service(
    redis_url: str, prefix: str, clock: ScaledClock, fleet: NodeFleet, consumer: str = "c1"
) -> AsyncIterator[LiveService]:
    client = redis.Redis.from_url(redis_url)
    async_client = redis.asyncio.from_url(redis_url)
    log = EventLog(client, LogKeys(prefix))
    nodes = InProcessNodes(LiveFleet(fleet, async_client.publish, clock, channel_prefix=prefix))
    config = ServiceConfig(min_ready=2, max_nodes=10)

    def factory(saved: dict[str, object] | None, features: OnlineFeatures) -> Engine:
        scorer = HeuristicScorer()
        if saved is None:
            return Engine(scorer, config, features=features)
        return Engine.from_dict(saved, scorer, features=features)

    service = LiveService(
        engine_factory=factory,
        log_=log,
        consumer=StreamConsumer(log, "service", consumer, claim_idle_ms=0),
        store=StateStore(client, f"{prefix}service:state"),
        provider=nodes,
        clock=clock,
        options=LiveOptions(read_block_ms=50, reconcile_every_s=5.0),
    )
    await service.start()
    try:
        yield service
    finally:
        await service.stop()
        await nodes.aclose()
        await async_client.aclose()
        client.close()


async def until(predicate: object, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def test_keeps_warm_nodes_serves_connects_and_survives_a_restart(
    redis_url: str, redis_client: redis.Redis, key_prefix: str
) -> None:
    clock = ScaledClock(anchor=time.time(), speed=SPEED)
    log = EventLog(redis_client, LogKeys(key_prefix))
    fleet = NodeFleet(UniformBoot(10, 29), random.Random(3))

    async def scenario() -> None:
        async with live_service(redis_url, key_prefix, clock, fleet) as service:
            await until(lambda: service.ready)
            # min_ready: two warm nodes are requested, boot and become ready.
            await until(lambda: service.engine.pool.counts().ready >= 2)
            now = clock.now()
            events: list[Event] = [
                UserActivity(now, "alice", int(now)),
                UserConnect(now + 0.01, "alice"),
            ]
            log.append_batch(events)
            await until(lambda: service.engine.pool.node_of("alice") is not None)
            assert service.engine.metrics(clock.now()).instant_rate == 1.0
            alice_node = service.engine.pool.node_of("alice")
        # A new service instance restores the pool: alice keeps her node.
        async with live_service(redis_url, key_prefix, clock, fleet, "c2") as again:
            assert again.engine.pool.node_of("alice") == alice_node
            assert "alice" in again.engine.features  # features rebuilt from the log
            now = clock.now()
            log.append(UserDisconnect(now, "alice"))
            await until(lambda: not again.engine.pool.is_connected("alice"))
            node = again.engine.pool.node(alice_node or "")
            assert node is not None and node.state in (
                NodeState.READY,
                NodeState.TERMINATING,
                NodeState.GONE,
            )
            assert again.engine.metrics(clock.now()).connects == 1

    with bridged(redis_client, log, key_prefix):
        asyncio.run(scenario())
