"""The simulated nodes: creation, boot, termination and node-time accounting.

Pure: no I/O and no clock; every call is handed ``now``. Ids and boot times come from the
``random.Random`` the fleet is given, so one seed replays the same fleet. A node's boot time
is drawn from the distribution in force at its creation (a ``BootSchedule``; a single
distribution is one without changes).

A node counts from its create request to its termination, boot included; a node still
alive counts up to ``now`` (docs/architecture.md, "Three numbers"). Terminated nodes stay
known, so a second delete of the same id is recognised (and answered like the first,
without counting anything twice); a listing (:meth:`NodeFleet.listed`) shows them for
``LISTED_TERMINATED_S`` after their termination.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass
from enum import Enum
from typing import Final

from features.events import NodeStatus
from simulation.nodes.boot import BootSchedule, BootTime

ID_PREFIX = "node-"


@dataclass(slots=True)
class Node:
    id: str
    created_at: float
    boot_s: float
    """The boot time drawn for it: it becomes ready at ``created_at + boot_s``."""
    status: NodeStatus = NodeStatus.BOOTING
    ready_at: float | None = None
    """When it became ready; None while booting, or when terminated before that."""
    terminated_at: float | None = None

    @property
    def due_at(self) -> float:
        return self.created_at + self.boot_s

    def alive_seconds(self, now: float) -> float:
        end = self.terminated_at if self.terminated_at is not None else now
        return max(0.0, end - self.created_at)


@dataclass(frozen=True, slots=True)
class Transition:
    """A node changed status at ``at``."""

    at: float
    node_id: str
    status: NodeStatus


class Termination(Enum):
    """What a terminate request did; the HTTP shell maps UNKNOWN to 404, the rest to 202."""

    TERMINATED = "terminated"
    ALREADY_TERMINATED = "already_terminated"
    UNKNOWN = "unknown"


LISTED_TERMINATED_S: Final = 3600.0
"""How long a listing of the simulated provider shows a terminated node, clock seconds (as
a cloud lists a terminated instance for a while): it holds the nodes alive and lately gone,
not every node since the start, so what a reconcile reads does not grow with uptime."""


class NodeFleet:
    """Every node ever created, and the booting ones that will become ready."""

    def __init__(self, boot: BootTime | BootSchedule, rng: random.Random) -> None:
        self.boot = boot if isinstance(boot, BootSchedule) else BootSchedule(boot)
        self.rng = rng
        self._nodes: dict[str, Node] = {}
        self._live: dict[str, Node] = {}
        self._due: list[tuple[float, int, str]] = []  # (due_at, sequence, node id)
        self._sequence = 0
        self._closed_seconds = 0.0

    def create(self, now: float) -> Node:
        """A new booting node, created at ``now``."""
        node_id = self._new_id()
        node = Node(node_id, now, self.boot.sample(self.rng, now))
        self._nodes[node_id] = node
        self._live[node_id] = node
        self._sequence += 1
        heapq.heappush(self._due, (node.due_at, self._sequence, node_id))
        return node

    def terminate(self, node_id: str, now: float) -> Termination:
        """Terminate a node at ``now``.

        Call :meth:`advance` with the same ``now`` first so a node whose boot ended by
        then is ready before it goes; a node still booting goes without becoming ready.
        """
        node = self._nodes.get(node_id)
        if node is None:
            return Termination.UNKNOWN
        if node.status is NodeStatus.TERMINATED:
            return Termination.ALREADY_TERMINATED
        node.status = NodeStatus.TERMINATED
        node.terminated_at = max(now, node.created_at)
        del self._live[node_id]
        self._closed_seconds += node.alive_seconds(now)
        return Termination.TERMINATED

    def advance(self, now: float) -> list[Transition]:
        """Nodes whose boot ended at or before ``now`` become ready; returned in time order."""
        done: list[Transition] = []
        while self._due and self._due[0][0] <= now:
            due_at, _, node_id = heapq.heappop(self._due)
            node = self._nodes[node_id]
            if node.status is not NodeStatus.BOOTING:
                continue
            node.status = NodeStatus.READY
            node.ready_at = due_at
            done.append(Transition(due_at, node_id, NodeStatus.READY))
        return done

    def next_due(self) -> float | None:
        """When the next booting node becomes ready, None when none is booting."""
        while self._due and self._nodes[self._due[0][2]].status is not NodeStatus.BOOTING:
            heapq.heappop(self._due)
        return self._due[0][0] if self._due else None

    def get(self, node_id: str) -> Node | None:
        return self._nodes.get(node_id)

    def nodes(self) -> list[Node]:
        """Every node ever created (terminated ones included), oldest first."""
        return list(self._nodes.values())

    def listed(self, now: float, terminated_for_s: float | None) -> list[Node]:
        """The nodes a listing at ``now`` shows, oldest first: the live ones, and those
        terminated at most ``terminated_for_s`` before ``now`` (every one with None)."""
        if terminated_for_s is None:
            return self.nodes()
        since = now - terminated_for_s
        return [
            n for n in self._nodes.values() if n.terminated_at is None or n.terminated_at >= since
        ]

    def live(self) -> list[Node]:
        """Nodes not terminated (booting or ready), oldest first."""
        return list(self._live.values())

    @property
    def node_count(self) -> int:
        """Nodes ever created."""
        return len(self._nodes)

    def node_seconds(self, now: float) -> float:
        """Node time: terminated nodes from create to termination, live ones up to ``now``."""
        return self._closed_seconds + sum(n.alive_seconds(now) for n in self._live.values())

    def _new_id(self) -> str:
        while True:
            node_id = f"{ID_PREFIX}{self.rng.getrandbits(32):08x}"
            if node_id not in self._nodes:
                return node_id
