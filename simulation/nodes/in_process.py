"""The built-in simulated node API as a node provider inside the service process.

Used when no node API URL is set: nodes boot on the shared clock and announce their
status on ``node:status`` exactly as the HTTP simulator does, so the service sees them
through the event log like any real provider's.
"""

from __future__ import annotations

import asyncio
import contextlib

from service.provider import ProviderNode
from simulation.nodes.fleet import LISTED_TERMINATED_S, Termination
from simulation.nodes.live_fleet import LiveFleet


class InProcessNodes:
    def __init__(self, live: LiveFleet) -> None:
        self.live = live
        self._runner: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start announcing boots (needs a running event loop)."""
        if self._runner is None:
            self._runner = asyncio.create_task(self.live.run(), name="simulated-boots")

    async def create(self) -> str:
        self.start()
        node = await self.live.create()
        return node.id

    async def terminate(self, node_id: str) -> bool:
        return await self.live.terminate(node_id) is not Termination.UNKNOWN

    async def list_nodes(self) -> list[ProviderNode] | None:
        await self.live.settle()
        return [
            ProviderNode(node.id, node.status.value, node.created_at, node.ready_at)
            for node in self.live.fleet.listed(self.live.clock.now(), LISTED_TERMINATED_S)
        ]

    async def aclose(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            self._runner = None
