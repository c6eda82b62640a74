"""Two service replicas on one Redis and one node fleet: both serve, one scales.

Each replica has its own consumer group (so both see every event) and its own saved
state, and both answer predictions. Only the holder of the lease (``service.lease``)
ticks and sends commands, each of which first confirms its term in Redis. The leader is
then killed (it stops renewing, and nothing releases its lease): the other replica
takes over within the lease time and, having followed the pool from the node status
events, scales on from there without creating a node twice. Real Redis, the in-process
simulated node API on a fast clock.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass

import httpx
import numpy as np
import pytest
import redis
import redis.asyncio

from features.clock import ScaledClock
from features.eventlog import EventLog, LogKeys
from features.events import UserActivity, UserConnect
from features.online import OnlineFeatures
from features.table import to_ms
from models.heuristic import HeuristicScorer
from service.app import create_app
from service.config import ServiceConfig
from service.consumer import StreamConsumer
from service.engine import Engine
from service.lease import FencedProvider, Leadership, Lease, NotLeader
from service.live import LiveOptions, LiveService
from service.pool import NodeState, PoolNode
from service.provider import ProviderNode
from service.state_store import StateStore
from simulation.nodes.boot import UniformBoot
from simulation.nodes.fleet import NodeFleet
from simulation.nodes.in_process import InProcessNodes
from simulation.nodes.live_fleet import LiveFleet
from tests.service.live_harness import SPEED, bridged, until

pytestmark = pytest.mark.integration

TTL_MS = 1000
# Sizing by min_ready alone (no users to predict, no baseline of unforeseen connects), so
# the creates a single service would make are known exactly.
CONFIG = ServiceConfig(
    min_ready=2, max_nodes=10, max_idle_s=3600.0, calibrate=False, free_credit=0.0
)


class NodeAPI:
    """The one (simulated) node API both replicas talk to; counts who asked for what."""

    def __init__(self, nodes: InProcessNodes) -> None:
        self.nodes = nodes
        self.creates: Counter[str] = Counter()
        self.terminates: Counter[str] = Counter()

    def client(self, replica: str) -> _Client:
        return _Client(self, replica)


@dataclass
class _Client:
    api: NodeAPI
    replica: str

    async def create(self) -> str:
        self.api.creates[self.replica] += 1
        return await self.api.nodes.create()

    async def terminate(self, node_id: str) -> bool:
        self.api.terminates[self.replica] += 1
        return await self.api.nodes.terminate(node_id)

    async def list_nodes(self) -> list[ProviderNode] | None:
        return await self.api.nodes.list_nodes()

    async def aclose(self) -> None:
        return None  # shared: closed once by the test


@dataclass
class Replica:
    name: str
    service: LiveService
    leadership: Leadership
    provider: FencedProvider


def replica(
    name: str, client: redis.Redis, prefix: str, clock: ScaledClock, api: NodeAPI
) -> Replica:
    log = EventLog(client, LogKeys(prefix))
    leadership = Leadership(Lease(client, f"{prefix}service:leader", ttl_ms=TTL_MS, holder=name))
    provider = FencedProvider(api.client(name), leadership)

    def factory(saved: dict[str, object] | None, features: OnlineFeatures) -> Engine:
        if saved is None:
            return Engine(HeuristicScorer(), CONFIG, features=features)
        return Engine.from_dict(saved, HeuristicScorer(), features=features, config=CONFIG)

    service = LiveService(
        engine_factory=factory,
        event_log=log,
        consumer=StreamConsumer(log, f"service-{name}", name, claim_idle_ms=0),
        store=StateStore(client, f"{prefix}service:{name}:state"),
        provider=provider,
        clock=clock,
        options=LiveOptions(read_block_ms=50, reconcile_every_s=5.0),
        leader=leadership.is_leader,
    )
    return Replica(name, service, leadership, provider)


def alive(pool_nodes: list[PoolNode]) -> set[str]:
    return {
        n.node_id for n in pool_nodes if n.node_id is not None and n.state is not NodeState.GONE
    }


async def predict(service: LiveService, user_ids: list[str]) -> list[dict[str, object]]:
    app = create_app(service, manage_lifecycle=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://replica") as http:
        answer = await http.post("/v1/predict", json={"user_ids": user_ids})
        assert answer.status_code == 200, answer.text
        rows: list[dict[str, object]] = answer.json()
        return rows


def test_one_leader_scales_and_a_killed_leader_is_replaced_without_double_scaling(
    redis_url: str, redis_client: redis.Redis, key_prefix: str
) -> None:
    clock = ScaledClock(anchor=time.time(), speed=SPEED)
    log = EventLog(redis_client, LogKeys(key_prefix))
    fleet = NodeFleet(UniformBoot(10, 29), random.Random(11))

    async def scenario() -> None:
        publisher = redis.asyncio.from_url(redis_url)
        nodes = InProcessNodes(
            LiveFleet(fleet, publisher.publish, clock, channel_prefix=key_prefix)
        )
        api = NodeAPI(nodes)
        a = replica("a", redis_client, key_prefix, clock, api)
        b = replica("b", redis_client, key_prefix, clock, api)
        a.leadership.start()
        await until(a.leadership.is_leader)
        b.leadership.start()
        await a.service.start()
        await b.service.start()
        try:
            # The leader keeps min_ready warm nodes; the follower sees them come up.
            await until(lambda: a.service.engine.pool.counts().ready >= 2)
            await until(lambda: b.service.engine.pool.counts().ready >= 2)
            now = clock.now()
            log.append_batch([UserActivity(now, "ann", int(now)), UserConnect(now + 0.01, "ann")])
            await until(lambda: a.service.engine.pool.node_of("ann") is not None)
            await until(lambda: b.service.engine.pool.node_of("ann") is not None)
            await until(lambda: a.service.engine.pool.counts().ready >= 2)  # ann's replaced
            await asyncio.sleep(1.0)  # 50 s of clock: several ticks of each replica

            # Both serve predictions, from the same events: the same features.
            asked = ["ann", "bob"]
            for service in (a.service, b.service):
                rows = await predict(service, asked)
                assert [row["user_id"] for row in rows] == asked
            at = to_ms(clock.now())
            features_a = a.service.engine.features.features(at, asked)
            np.testing.assert_array_equal(features_a, b.service.engine.features.features(at, asked))
            # Only the leader scaled; the follower's pool is the fleet's all the same.
            assert api.creates == {"a": 3} and not api.terminates
            assert b.service.telemetry.ticks._value.get() == 0
            assert b.leadership.terms == 0 and b.provider.actions == {}
            live_ids = {node.id for node in fleet.live()}
            assert alive(a.service.engine.pool.nodes()) == live_ids
            await until(lambda: alive(b.service.engine.pool.nodes()) == live_ids)

            # Kill the leader: it stops renewing; its lease is not released.
            killed = time.monotonic()
            await a.leadership.stop(release=False)
            await a.service.stop()
            with_a = len(fleet.live())
            await until(b.leadership.is_leader, timeout_s=TTL_MS / 1000 + 2.0)
            took = time.monotonic() - killed
            assert took <= TTL_MS / 1000 + b.leadership.renew_every_s + 0.3, took
            assert b.leadership.fence is not None and b.leadership.fence > 1

            # The new leader ticks, finds the pool as it should be: no node created twice.
            ticks = b.service.telemetry.ticks._value.get()
            await until(lambda: b.service.telemetry.ticks._value.get() >= ticks + 5)
            assert api.creates == {"a": 3}
            assert len(fleet.live()) == with_a
            # ... and scales on when demand changes.
            now = clock.now()
            log.append_batch([UserConnect(now, "cid"), UserConnect(now + 0.01, "dee")])
            await until(lambda: api.creates["b"] >= 2)
            await until(lambda: b.service.engine.pool.counts().ready >= 2)
            await asyncio.sleep(0.5)
            assert api.creates == {"a": 3, "b": 2}  # the dead leader never acted again
            assert alive(b.service.engine.pool.nodes()) == {node.id for node in fleet.live()}
            assert b.provider.last_fence == b.leadership.fence

            # A stale leader cannot act: its commands are refused before the node API.
            try:
                await a.provider.create()
                raise AssertionError("a stale leader created a node")
            except NotLeader:
                pass
            assert api.creates["a"] == 3
        finally:
            for r in (a, b):
                await r.service.stop()
                await r.leadership.stop()
            await nodes.aclose()
            await publisher.aclose()

    with bridged(redis_client, log, key_prefix):
        asyncio.run(scenario())
