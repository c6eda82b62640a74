"""A live service on real Redis with the in-process simulated node API, for tests."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass

import redis
import redis.asyncio

from features.bridge import Bridge
from features.clock import ScaledClock
from features.eventlog import EventLog, LogKeys
from features.online import OnlineFeatures
from models.heuristic import HeuristicScorer
from models.scoring import Scorer
from service.config import ServiceConfig
from service.consumer import StreamConsumer
from service.engine import Engine
from service.evidence_log import EvidenceSink
from service.live import LiveOptions, LiveService, ModelWatcher
from service.state_store import StateStore
from simulation.nodes.fleet import NodeFleet
from simulation.nodes.in_process import InProcessNodes
from simulation.nodes.live_fleet import LiveFleet

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


@dataclass
class Harness:
    service: LiveService
    nodes: InProcessNodes
    client: redis.Redis
    async_client: redis.asyncio.Redis

    async def close(self) -> None:
        await self.nodes.aclose()
        await self.async_client.aclose()
        self.client.close()


def make_service(
    redis_url: str,
    prefix: str,
    clock: ScaledClock,
    fleet: NodeFleet,
    consumer: str = "c1",
    *,
    scorer: Scorer | None = None,
    watcher: ModelWatcher | None = None,
    shadow: Scorer | None = None,
    challenger: ModelWatcher | None = None,
    evidence: EvidenceSink | None = None,
    options: LiveOptions | None = None,
) -> Harness:
    """A live service (not started) with its clients; ``close()`` them after stopping it."""
    client = redis.Redis.from_url(redis_url)
    async_client = redis.asyncio.from_url(redis_url)
    log = EventLog(client, LogKeys(prefix))
    nodes = InProcessNodes(LiveFleet(fleet, async_client.publish, clock, channel_prefix=prefix))
    config = ServiceConfig(min_ready=2, max_nodes=10)

    def factory(saved: dict[str, object] | None, features: OnlineFeatures) -> Engine:
        used = scorer if scorer is not None else HeuristicScorer()
        if saved is None:
            return Engine(used, config, features=features, shadow=shadow)
        return Engine.from_dict(saved, used, features=features, shadow=shadow)

    service = LiveService(
        engine_factory=factory,
        event_log=log,
        consumer=StreamConsumer(log, "service", consumer, claim_idle_ms=0),
        store=StateStore(client, f"{prefix}service:state"),
        provider=nodes,
        clock=clock,
        options=options or LiveOptions(read_block_ms=50, reconcile_every_s=5.0),
        watcher=watcher,
        challenger=challenger,
        evidence=evidence,
    )
    return Harness(service, nodes, client, async_client)


@asynccontextmanager
async def live_service(
    redis_url: str, prefix: str, clock: ScaledClock, fleet: NodeFleet, consumer: str = "c1"
) -> AsyncIterator[LiveService]:
    """A started live service, stopped and closed on exit."""
    harness = make_service(redis_url, prefix, clock, fleet, consumer)
    await harness.service.start()
    try:
        yield harness.service
    finally:
        await harness.service.stop()
        await harness.close()


async def until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)
