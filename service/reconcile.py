"""Reconciliation: the pool's view against the provider's list of nodes.

Events can be lost (pub/sub), creates can time out after succeeding, a restart can
forget an in-flight request. Periodically the live shell lists the provider's nodes and
this pure function says how to converge, by one documented rule:

- a node the provider has (booting or ready) that the pool does not know, older than
  ``grace_s`` (so a create whose answer is still on its way is not mistaken for it), is
  **adopted** (fed to the pool as its status event): it is paid for, so it is better put
  to use, and the scaler terminates it if it is surplus. A node the pool already saw go
  (it terminated or forgot it) is not adopted again: it is **terminated again**;
- a node the pool holds that the provider reports terminated, or no longer lists, is
  **forgotten** (the pool treats it as deleted; a user on it waits for another node); a
  node the pool is terminating only after ``grace_s`` since the decision: before that its
  delete's answer and its ``terminated`` event are on their way (a soak at x240 logged a
  "gone" node within milliseconds of every such delete);
- a node the pool holds as booting that the provider reports ready since ``grace_s`` or
  longer (by its ``ready_at``, else by its creation) is **marked ready** (its ``ready`` event
  was lost, e.g. published while Redis was down, rather than still on its way);
- a node the pool has been terminating for ``grace_s`` or longer that the provider still
  lists alive is **terminated again** (the delete failed or was lost; deletes are
  idempotent), so no node the service gave up stays paid for;
- a request that got no node id within ``request_timeout_s`` is **expired** (failed);
  if the node was in fact created, the first rule adopts it later.

**A listing is as old as its request.** ``listed_at`` is when the shell asked for the
listing; it may be applied later, after the pool changed. Ages are taken at ``listed_at``,
and a node the pool learned of (its create answered, or adopted) at or after ``listed_at``
is never forgotten for missing from it. A node the core decided to terminate less than
``grace_s`` before the listing was asked for is not terminated again: its delete may not
be sent yet (the live shell sends commands only after saving the state they come from) or
answered yet. Without that, a reconciliation that ran while a tick's
state was being saved listed the tick's surplus nodes alive, no delete sent yet, and
terminated them "again" (a few nodes per 10 minutes at x60, where reconcile runs every
half wall second); ``tests/service/test_reconcile_race.py`` holds that window open. The
shell also repeats a delete only when the listing was asked for after that delete was
answered (``service.node_commands``, ``stale_delete``), which covers a delete still in
flight after the grace (retries).

**An accelerated clock keeps wall-time floors.** Both waits are clock seconds, but what
they wait for (an event through Redis, a create's answer over HTTP) takes wall time.
At x240 a 30 s grace is an eighth of a wall second, shorter than a busy event loop's
answer: a soak at that speed marked nodes ready before their event arrived, forgot
nodes already gone and expired requests still being answered. So ``speed`` (clock seconds
per wall second) stretches the grace to at least ``GRACE_WALL_FLOOR_S`` and the request
timeout to at least ``REQUEST_WALL_FLOOR_S`` wall seconds; at x1 neither floor binds.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from features.events import NodeStatus
from service.pool import NodeState, PoolNode
from service.provider import ProviderNode

_ALIVE = {NodeStatus.BOOTING.value, NodeStatus.READY.value}

GRACE_WALL_FLOOR_S = 1.0
"""The grace is never shorter than this many wall seconds (an event's way through Redis)."""
REQUEST_WALL_FLOOR_S = 10.0
"""A request expires after no fewer wall seconds than this: twice the node API client's
create timeout, so an answer still on its way is not counted failed."""


@dataclass(frozen=True, slots=True)
class Reconciliation:
    adopt: list[tuple[str, NodeStatus]] = field(default_factory=list)
    forget: list[str] = field(default_factory=list)
    expire: list[str] = field(default_factory=list)
    """Request tokens."""
    ready: list[str] = field(default_factory=list)
    terminate: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.adopt or self.forget or self.expire or self.ready or self.terminate)


def reconcile(
    pool_nodes: list[PoolNode],
    provider_nodes: list[ProviderNode],
    now: float,
    *,
    gone: Collection[str] = (),
    grace_s: float = 30.0,
    request_timeout_s: float = 60.0,
    listed_at: float | None = None,
    speed: float = 1.0,
) -> Reconciliation:
    """How to converge; ``gone``: ids of nodes the pool saw go (``NodePool.gone_ids``);
    ``listed_at``: when the listing was asked for (``now`` when not given); ``speed``: the
    clock's seconds per wall second (the waits' wall floors)."""
    grace_s = max(grace_s, GRACE_WALL_FLOOR_S * speed)
    request_timeout_s = max(request_timeout_s, REQUEST_WALL_FLOOR_S * speed)
    at = now if listed_at is None else min(listed_at, now)
    listed = {node.id: node for node in provider_nodes}
    known = {node.node_id for node in pool_nodes if node.node_id is not None}
    result = Reconciliation()
    for node in provider_nodes:
        if node.id in known or node.status not in _ALIVE:
            continue
        if node.id in gone:
            result.terminate.append(node.id)
            continue
        if node.created_at is not None and at - node.created_at < grace_s:
            continue
        result.adopt.append((node.id, NodeStatus(node.status)))
    for pool_node in pool_nodes:
        if pool_node.state is NodeState.GONE:
            continue
        if pool_node.node_id is None:
            if pool_node.token is not None and now - pool_node.created_at > request_timeout_s:
                result.expire.append(pool_node.token)
            continue
        seen = listed.get(pool_node.node_id)
        if seen is None or seen.status == NodeStatus.TERMINATED.value:
            learned_late = pool_node.known_at is not None and pool_node.known_at >= at
            deleting = pool_node.state is NodeState.TERMINATING and (
                pool_node.terminating_at is not None and at - pool_node.terminating_at < grace_s
            )
            if at - pool_node.created_at >= grace_s and not learned_late and not deleting:
                result.forget.append(pool_node.node_id)
        elif pool_node.state is NodeState.TERMINATING:
            since = pool_node.terminating_at
            if since is None or at - since >= grace_s:
                result.terminate.append(pool_node.node_id)
        elif pool_node.state is NodeState.BOOTING and seen.status == NodeStatus.READY.value:
            since = seen.ready_at if seen.ready_at is not None else pool_node.created_at
            if at - since >= grace_s:
                result.ready.append(pool_node.node_id)
    return result
