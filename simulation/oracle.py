"""The oracle: the cheapest way to serve every connect at once, knowing the future.

It knows each connect, disconnect and boot time in advance. Every session gets a node
that becomes ready exactly at its connect: either a node freed by an earlier session,
kept idle for the gap, when that gap is shorter than a fresh node's boot; or a fresh node
created one boot time before the connect. A freed node that no later connect reuses is
terminated the moment it is freed. Nodes only ever cost boot, service and the short idle
gaps worth keeping: a lower bound on node-seconds at a 100% instant rate, scored by the
same metric code as every policy (``service.service_level``).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass

from features.events import Event, UserConnect, UserDisconnect
from service.service_level import Metrics, MetricsReport
from simulation.nodes.boot import BootTime


@dataclass(slots=True)
class _Node:
    created_at: float
    freed_at: float | None = None


def oracle(events: Iterable[Event], *, end: float, boot: BootTime, seed: int) -> MetricsReport:
    """Serve the sessions of ``events`` (in time order) up to ``end``; their metrics."""
    rng = random.Random(seed)
    metrics = Metrics()
    serving: dict[str, _Node] = {}
    freed: list[_Node] = []  # most recently freed last
    for event in events:
        if isinstance(event, UserConnect):
            if event.user_id in serving:
                metrics.duplicate_connects += 1
                continue
            fresh_boot = boot.sample(rng)
            if freed and event.ts - _free_time(freed[-1]) < fresh_boot:
                node = freed.pop()
            else:
                node = _Node(created_at=event.ts - fresh_boot)
                metrics.nodes_created += 1
            node.freed_at = None
            serving[event.user_id] = node
            metrics.connect(event.user_id, event.ts, instant=True)
        elif isinstance(event, UserDisconnect):
            started = metrics.sessions.get(event.user_id)
            metrics.disconnect(event.user_id, event.ts, abandoned=False)
            if event.user_id not in serving:
                continue
            node = serving.pop(event.user_id)
            if started is not None:
                metrics.node_freed(started, event.ts)
            node.freed_at = event.ts
            freed.append(node)
    for node in freed:
        metrics.node_gone(node.created_at, _free_time(node))
    open_node_seconds = sum(max(0.0, end - node.created_at) for node in serving.values())
    open_busy = sum(max(0.0, end - metrics.sessions[user]) for user in serving)
    return metrics.report(end, open_node_seconds, open_busy)


def _free_time(node: _Node) -> float:
    assert node.freed_at is not None
    return node.freed_at
