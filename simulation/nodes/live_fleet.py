"""The fleet on a clock: announces every status change on ``node:status``.

Wraps the pure :class:`~simulation.nodes.fleet.NodeFleet` for the HTTP shell. One lock
orders fleet changes and their announcements, so ``booting`` always goes out before
``ready``, and ``ready`` before ``terminated``. :meth:`LiveFleet.run` sleeps until the
next boot ends (woken early when a node is created) and announces it. A failed publish
is logged and counted; it never fails the request or the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from features.clock import Clock
from features.events import Channel, NodeStatus, NodeStatusChanged, encode_payload
from simulation.nodes.fleet import Node, NodeFleet, Termination

log = logging.getLogger(__name__)

Publisher = Callable[[str, str], Awaitable[object]]
"""``publish(channel, message)``, e.g. the ``publish`` method of a ``redis.asyncio.Redis``."""


@dataclass(slots=True)
class PublishStats:
    published: int = 0
    errors: int = 0


class LiveFleet:
    def __init__(
        self,
        fleet: NodeFleet,
        publish: Publisher,
        clock: Clock,
        *,
        channel_prefix: str = "",
    ) -> None:
        self.fleet = fleet
        self.clock = clock
        self.channel = f"{channel_prefix}{Channel.NODE_STATUS.value}"
        self.stats = PublishStats()
        self._publish = publish
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()

    async def create(self) -> Node:
        """A new node, announced as ``booting``."""
        async with self._lock:
            now = self.clock.now()
            await self._announce_due(now)
            node = self.fleet.create(now)
            log.info("node %s created, boots in %g s", node.id, node.boot_s)
            await self._announce(NodeStatusChanged(now, node.id, NodeStatus.BOOTING))
        self._wake.set()
        return node

    async def terminate(self, node_id: str) -> Termination:
        """Terminate a node; ``terminated`` is announced the first time only."""
        async with self._lock:
            now = self.clock.now()
            await self._announce_due(now)
            result = self.fleet.terminate(node_id, now)
            if result is Termination.TERMINATED:
                await self._announce(NodeStatusChanged(now, node_id, NodeStatus.TERMINATED))
            else:
                log.info("terminate %s: %s", node_id, result.value)
        return result

    async def settle(self) -> None:
        """Announce the boots that have ended by now."""
        async with self._lock:
            await self._announce_due(self.clock.now())

    async def run(self) -> None:
        """Announce each node ``ready`` when its boot ends, until cancelled."""
        while True:
            self._wake.clear()
            await self.settle()
            due = self.fleet.next_due()
            delay = None if due is None else max(0.0, self.clock.wall_delay(due - self.clock.now()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def _announce_due(self, now: float) -> None:
        for change in self.fleet.advance(now):
            await self._announce(NodeStatusChanged(change.at, change.node_id, change.status))

    async def _announce(self, event: NodeStatusChanged) -> None:
        message = encode_payload(event)
        try:
            await self._publish(self.channel, message)
        except Exception as e:
            self.stats.errors += 1
            log.error("publishing %s on %s failed: %r", message, self.channel, e)
            return
        self.stats.published += 1
        log.info("node %s %s", event.node_id, event.status.value)
