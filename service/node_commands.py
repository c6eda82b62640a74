"""Carrying out the core's commands against the node provider, for the live shell.

Each create or terminate runs as its own asyncio task; its outcome goes back to the engine
(``node_created``, ``request_failed``, ``node_deleted``) and the state is saved. The deletes
are remembered (when each finished), so that reconciliation repeats a delete only when the
provider's listing came after it (``stale_delete``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

from features.clock import Clock
from service.commands import Command, RequestNode
from service.engine import Engine
from service.provider import CircuitOpen, NodeProvider, ProviderError
from service.telemetry import Telemetry

log = logging.getLogger(__name__)


class NodeCommands:
    def __init__(
        self,
        *,
        provider: NodeProvider,
        engine: Callable[[], Engine],
        clock: Clock,
        telemetry: Telemetry,
        save: Callable[[], Awaitable[None]],
    ) -> None:
        self.provider = provider
        self._engine = engine
        self._clock = clock
        self._telemetry = telemetry
        self._save = save
        """Saves the state and never raises."""
        self._inflight: set[asyncio.Task[None]] = set()
        self._deletes: dict[str, float | None] = {}
        """Node id -> when its last delete finished (monotonic; None: still in flight)."""

    def execute(self, commands: Sequence[Command]) -> None:
        """Start a task for each command."""
        for command in commands:
            if isinstance(command, RequestNode):
                self._run(self._create(command.token))
            else:
                self._deletes[command.node_id] = None
                self._run(self._terminate(command.node_id))

    def deletes_in_flight(self) -> int:
        return sum(1 for done in self._deletes.values() if done is None)

    def stale_delete(self, node_id: str, listed_at: float) -> bool:
        """Whether a listing made at ``listed_at`` (monotonic) that shows ``node_id`` alive
        means its delete did not happen (rather than that it finished after the listing)."""
        if node_id not in self._deletes:
            return True
        done = self._deletes[node_id]
        return done is not None and done < listed_at

    def forget_deletes(self) -> None:
        """Drop what is known of the deletes of nodes the pool no longer holds."""
        held = {node.node_id for node in self._engine().pool.nodes()}
        for node_id in [n for n, done in self._deletes.items() if done and n not in held]:
            del self._deletes[node_id]

    def running(self) -> list[asyncio.Task[None]]:
        """The command tasks not finished yet (a stopping shell cancels them)."""
        return list(self._inflight)

    def _run(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _create(self, token: str) -> None:
        engine, outcomes = self._engine(), self._telemetry.commands
        try:
            node_id = await self.provider.create()
        except CircuitOpen as e:
            log.info("node request %s refused: %s", token, e)
            engine.request_failed(token, self._clock.now())
            outcomes.labels(kind="create", outcome="rejected").inc()
        except ProviderError as e:
            log.warning("node request %s failed: %s", token, e)
            engine.request_failed(token, self._clock.now())
            outcomes.labels(kind="create", outcome="failed").inc()
        else:
            engine.node_created(token, node_id, self._clock.now())
            outcomes.labels(kind="create", outcome="ok").inc()
        await self._save()

    async def _terminate(self, node_id: str) -> None:
        outcomes = self._telemetry.commands
        try:
            known = await self.provider.terminate(node_id)
        except ProviderError as e:
            log.warning("terminating %s failed: %s (reconciliation will see it)", node_id, e)
            outcome = "rejected" if isinstance(e, CircuitOpen) else "failed"
            outcomes.labels(kind="terminate", outcome=outcome).inc()
            return
        finally:
            self._deletes[node_id] = time.monotonic()
        outcomes.labels(kind="terminate", outcome="ok").inc()
        if not known:
            self._engine().node_deleted(node_id, self._clock.now())
            await self._save()
