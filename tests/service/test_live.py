"""The live shell against real Redis, the in-process simulated node API and a fast clock."""

from __future__ import annotations

import asyncio
import random
import time

import redis

from features.clock import ScaledClock
from features.eventlog import EventLog, LogKeys
from features.events import Event, UserActivity, UserConnect, UserDisconnect
from service.pool import NodeState
from simulation.nodes.boot import UniformBoot
from simulation.nodes.fleet import NodeFleet
from tests.service.live_harness import SPEED, bridged, live_service, until


def test_keeps_warm_nodes_serves_connects_and_survives_a_restart(
    redis_url: str, redis_client: redis.Redis, key_prefix: str
) -> None:
    clock = ScaledClock(anchor=time.time(), speed=SPEED)
    log = EventLog(redis_client, LogKeys(key_prefix))
    fleet = NodeFleet(UniformBoot(10, 29), random.Random(3))

    async def scenario() -> None:
        async with live_service(redis_url, key_prefix, clock, fleet) as service:
            await until(lambda: service.sees_events)
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


def test_metrics_read_the_pool_at_the_time_of_the_request(
    redis_url: str, redis_client: redis.Redis, key_prefix: str
) -> None:
    """Between two ticks a connect changes the pool: ``/metrics`` (``refresh_telemetry``,
    what a scrape runs) shows it at once, as ``/v1/pool`` does, not a tick later."""
    clock = ScaledClock()  # real time: ticks ten seconds apart
    log = EventLog(redis_client, LogKeys(key_prefix))
    fleet = NodeFleet(UniformBoot(10, 29), random.Random(3))

    async def scenario() -> tuple[dict[str, int], dict[str, float | None]]:
        async with live_service(redis_url, key_prefix, clock, fleet) as service:
            await until(lambda: service.sees_events)
            now = clock.now()
            log.append_batch([UserActivity(now, "bob", int(now)), UserConnect(now + 0.01, "bob")])
            await until(lambda: service.engine.pool.is_connected("bob"))
            service.refresh_telemetry()
            counts = service.engine.pool.counts().to_dict()
            registry = service.telemetry.registry
            gauges = {
                state: registry.get_sample_value("provisioner_pool_nodes", {"state": state})
                for state in counts
            }
            return counts, gauges

    with bridged(redis_client, log, key_prefix):
        counts, gauges = asyncio.run(scenario())
    assert counts["waiting"] + counts["allocated"] == 1
    assert gauges == {state: float(value) for state, value in counts.items()}
