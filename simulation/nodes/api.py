"""The seed-compatible node API over HTTP (see docs/node-api.md for the contract).

``POST /api/nodes``, ``DELETE /api/nodes/{id}``, ``GET /`` and ``GET /api/efficiency`` as
the original Go service answers them, plus the extension ``GET /api/nodes``. Two
background tasks run in the app's lifespan: the boot timer (announces ``ready``) and,
when a Redis client is given, the user feed (connected time for the efficiency report).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import redis.asyncio
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from features.clock import WALL_CLOCK, Clock
from features.events import DEFAULT_LIMITS, Limits
from service.efficiency import Efficiency
from simulation.nodes.efficiency import efficiency_report
from simulation.nodes.fleet import LISTED_TERMINATED_S, Node, NodeFleet, Termination
from simulation.nodes.live_fleet import LiveFleet, Publisher
from simulation.nodes.userfeed import UserFeed
from simulation.nodes.usertime import UserTime

log = logging.getLogger(__name__)


class Health(BaseModel):
    status: str = "ok"
    service: str = "node-api"


class CreatedNode(BaseModel):
    id: str


class TerminatedNode(BaseModel):
    id: str
    status: str = "terminated"


class NodeView(BaseModel):
    id: str
    status: str
    created_at: float
    ready_at: float | None
    terminated_at: float | None

    @classmethod
    def of(cls, node: Node) -> NodeView:
        return cls(
            id=node.id,
            status=node.status.value,
            created_at=node.created_at,
            ready_at=node.ready_at,
            terminated_at=node.terminated_at,
        )


@dataclass(frozen=True, slots=True)
class NodeApiState:
    """What an app serves from; ``feed`` is None when no Redis client was given."""

    live: LiveFleet
    users: UserTime
    feed: UserFeed | None
    clock: Clock

    def report(self) -> Efficiency:
        return efficiency_report(self.users, self.live.fleet, self.clock.now())


def create_node_api(
    fleet: NodeFleet,
    client: redis.asyncio.Redis | None = None,
    *,
    clock: Clock = WALL_CLOCK,
    channel_prefix: str = "",
    publish: Publisher | None = None,
    users: UserTime | None = None,
    limits: Limits = DEFAULT_LIMITS,
    listed_terminated_s: float | None = LISTED_TERMINATED_S,
) -> FastAPI:
    """The node API app.

    Status changes are published with ``publish`` or, by default, ``client.publish``; user
    time is followed on ``client`` (without a client, feed ``users`` yourself). Every
    channel name is prefixed with ``channel_prefix``. ``GET /api/nodes`` lists a
    terminated node for ``listed_terminated_s`` of the clock after its termination (for
    ever with None).
    """
    if publish is None:
        if client is None:
            raise ValueError("create_node_api needs a Redis client or a publish callable")
        publish = client.publish
    users = users if users is not None else UserTime()
    feed = (
        UserFeed(client, users, clock, channel_prefix=channel_prefix, limits=limits)
        if client is not None
        else None
    )
    state = NodeApiState(
        LiveFleet(fleet, publish, clock, channel_prefix=channel_prefix), users, feed, clock
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        jobs: list[Coroutine[Any, Any, None]] = [state.live.run()]
        if state.feed is not None:
            jobs.append(state.feed.run())
        tasks = [asyncio.create_task(job) for job in jobs]
        for task in tasks:
            task.add_done_callback(_log_crash)
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    app = FastAPI(title="node-api", summary="Seed-compatible simulated node API", lifespan=lifespan)
    app.state.node_api = state

    @app.get("/")
    async def health() -> Health:
        return Health()

    @app.post("/api/nodes", status_code=202)
    async def create_node() -> CreatedNode:
        node = await state.live.create()
        return CreatedNode(id=node.id)

    @app.delete("/api/nodes/{node_id}", status_code=202)
    async def terminate_node(node_id: str) -> TerminatedNode:
        if await state.live.terminate(node_id) is Termination.UNKNOWN:
            raise HTTPException(status_code=404, detail="node not found")
        return TerminatedNode(id=node_id)

    @app.get("/api/nodes")
    async def list_nodes() -> list[NodeView]:
        await state.live.settle()
        listed = state.live.fleet.listed(clock.now(), listed_terminated_s)
        return [NodeView.of(node) for node in listed]

    @app.get("/api/efficiency")
    async def report() -> Efficiency:
        return state.report()

    return app


def node_api_state(app: FastAPI) -> NodeApiState:
    """The state an app made by :func:`create_node_api` serves from."""
    state = app.state.node_api
    assert isinstance(state, NodeApiState)
    return state


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("node API background task ended", exc_info=task.exception())
