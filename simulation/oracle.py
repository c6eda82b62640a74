"""The oracle: the cheapest way to serve every connect at once, knowing the future.

It knows each connect, disconnect and boot time in advance. Every session gets a node
that becomes ready exactly at its connect: either a node freed by an earlier session,
kept idle for the gap, when that gap is shorter than a fresh node's boot (its time from
creation to the connect); or a fresh node created one boot time before the connect. A
freed node that no later connect reuses is terminated the moment it is freed. Nodes only
ever cost boot, service and the short idle gaps worth keeping: a lower bound on
node-seconds at a 100% instant rate, scored by the same metric code as every policy
(``service.service_level``).

Under a boot schedule a node boots with the distribution in force at its creation, which
comes one boot time before the connect: the oracle draws, for each connect, one boot time
from the distribution in force at the connect, and keeps it when the node is then created
under that distribution; otherwise it draws from the one before, and so on back. A node
that a slower distribution would make late is created as the faster one ends (just before
the change), ready early, and idles until the connect. Without changes that is one draw per
connect, as it always was.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from features.events import Event, UserConnect, UserDisconnect
from service.service_level import Metrics, MetricsReport
from simulation.nodes.boot import BootSchedule, BootTime


@dataclass(slots=True)
class _Node:
    created_at: float
    freed_at: float | None = None


def oracle(
    events: Iterable[Event], *, end: float, boot: BootTime | BootSchedule, seed: int
) -> MetricsReport:
    """Serve the sessions of ``events`` (in time order) up to ``end``; their metrics."""
    schedule = boot if isinstance(boot, BootSchedule) else BootSchedule(boot)
    phases = schedule.phases()
    rng = random.Random(seed)
    metrics = Metrics()
    serving: dict[str, _Node] = {}
    freed: list[_Node] = []  # most recently freed last
    for event in events:
        if isinstance(event, UserConnect):
            if event.user_id in serving:
                metrics.duplicate_connects += 1
                continue
            created_at, lead = _fresh_node(phases, event.ts, rng)
            if freed and event.ts - _free_time(freed[-1]) < lead:
                node = freed.pop()
            else:
                node = _Node(created_at=created_at)
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


def _fresh_node(
    phases: Sequence[tuple[float, BootTime]], ready_by: float, rng: random.Random
) -> tuple[float, float]:
    """``(created_at, lead)``: the latest creation of a fresh node that is ready by
    ``ready_by``, and the seconds from it to ``ready_by`` (its boot time, or more when it must
    be created before a change to a slower distribution). ``phases``: those of
    ``BootSchedule.phases``; the module says how."""
    current = max(i for i, (start, _) in enumerate(phases) if start <= ready_by)
    ends = math.inf  # when the phase tried ends: the phase after it starts
    for start, boot in reversed(phases[: current + 1]):
        drawn = boot.sample(rng)
        created_at = ready_by - drawn
        if created_at >= start:
            if created_at < ends:
                return created_at, drawn
            return ends, ready_by - ends
        ends = start
    raise AssertionError("the first phase starts at -inf: a node can always be created in it")


def _free_time(node: _Node) -> float:
    assert node.freed_at is not None
    return node.freed_at
