"""The reconcile race (a node terminated twice), reproduced in the live shell: real Redis, the
in-process simulated node API, the bridge.

The core marks a node terminating when it decides to terminate it (in a tick, or on an
event); the shell sends the delete only after the state is saved (``_dispatch`` follows
``await self._save()``). A reconciliation that runs in that window lists the node alive (no
delete has even been sent) and, before the fix, terminated it "again": a second delete of
every such node. At x60 the reconcile job runs every half wall second and the saves queue
behind each other on one lock, so it happened a few times per 10 minutes.

Here the window is held open on purpose: the store blocks the first save whose state holds
a terminating node until the test has run a reconciliation.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter
from typing import Any

import redis

from features.clock import ScaledClock
from features.eventlog import EventLog, LogKeys
from service.live import LiveOptions
from service.state_store import StateStore
from simulation.nodes.boot import UniformBoot
from simulation.nodes.fleet import NodeFleet
from tests.service.live_harness import bridged, make_service, until

SPEED = 10.0
"""Slow enough that the reconcile grace (30 clock s, 3 wall s here) is far longer than the
test's own steps between the core's decision and the reconciliation."""


class GatedStore(StateStore):
    """Blocks, once armed, the first save whose state holds a terminating node, until
    released; every other save waits behind it on the shell's save lock."""

    def __init__(self, client: redis.Redis, key: str) -> None:
        super().__init__(client, key)
        self.armed = False
        self.blocked = threading.Event()
        self.release = threading.Event()

    def save(self, engine: dict[str, Any], watermark: str | None, now: float) -> None:
        if self.armed and engine["pool"]["terminating"]:
            self.armed = False
            self.blocked.set()
            assert self.release.wait(30)
        super().save(engine, watermark, now)


def test_a_node_whose_delete_is_not_sent_yet_is_not_terminated_again(
    redis_url: str, redis_client: redis.Redis, key_prefix: str
) -> None:
    clock = ScaledClock(anchor=time.time(), speed=SPEED)
    log = EventLog(redis_client, LogKeys(key_prefix))
    fleet = NodeFleet(UniformBoot(10, 29), random.Random(5))
    harness = make_service(
        redis_url,
        key_prefix,
        clock,
        fleet,
        options=LiveOptions(read_block_ms=50, reconcile_every_s=1e9),  # only ours run
    )
    service = harness.service
    store = GatedStore(redis_client, f"{key_prefix}service:state")
    service.store = store
    deletes: Counter[str] = Counter()
    terminate = harness.nodes.terminate

    async def counted_terminate(node_id: str) -> bool:
        deletes[node_id] += 1
        return await terminate(node_id)

    harness.nodes.terminate = counted_terminate  # type: ignore[method-assign]

    async def scenario() -> tuple[list[str], float]:
        await service.start()
        try:
            await until(lambda: service.engine.pool.counts().ready >= 2, 30)
            # Three nodes the service did not ask for: adopted from their status events,
            # they are surplus, and a tick terminates them.
            store.armed = True
            extra = [(await harness.nodes.create()) for _ in range(3)]
            await until(store.blocked.is_set, 30)
            pool = service.engine.pool
            terminating = [n.node_id for n in pool.nodes() if n.state.value == "terminating"]
            assert terminating, "the core decided terminations"
            assert not any(deletes[n] for n in terminating if n), "none is sent yet"
            # The reconcile job runs now: the provider lists those nodes alive.
            job = asyncio.create_task(service.reconcile_once())
            await until(lambda: job.done() or bool(again()), 10)
            store.release.set()
            await job
            # Every terminating node goes (its delete, then its terminated event).
            await until(lambda: service.engine.pool.counts().terminating == 0, 30)
            return [n for n in extra if deletes[n]], again()
        finally:
            store.release.set()
            await service.stop()
            await harness.close()

    def again() -> float:
        value = service.telemetry.registry.get_sample_value(
            "provisioner_reconciled_total", {"action": "terminate"}
        )
        return value or 0.0

    with bridged(redis_client, log, key_prefix):
        deleted, terminated_again = asyncio.run(scenario())
    assert deleted, "the surplus nodes were terminated"
    assert terminated_again == 0.0
    assert all(count == 1 for count in deletes.values()), dict(deletes)
