"""The node pool: every node's state, who has which node, who waits, and the metrics.

Pure: every call is handed ``now`` (unix seconds); nothing reads a clock. Each operation is
O(1) (reports and views are O(nodes)). The state is plain data with a ``to_dict`` /
``from_dict`` round trip, so the live shell can persist it.

Node states::

    requested --created--> booting --ready--> ready (idle) <--disconnect-- allocated
        |                     |                  |   \\--connect / waiting user--^
     failed (dropped)      terminate          terminate
                              \\------------> terminating --terminated--> gone

- **Allocation.** A connect takes an idle ready node at once (the one idle the shortest
  time, so surplus nodes age and can be retired); otherwise the user waits, first come
  first served, for the next node that becomes ready or is freed by a disconnect.
- **Nodes we never requested.** A ``booting`` or ``ready`` status for an unknown id adopts
  the node into the pool in that state (created, for node time, at adoption); a
  ``terminated`` status for an unknown id is ignored. Ids of the last ``GONE_MEMORY`` gone
  nodes are remembered, so late events about them do not adopt them again. If the node
  API then reports creating an adopted id for one of our tokens, the two are merged.
- **Node lost under a user.** A ``terminated`` status for an allocated node puts its user
  back at the head of the queue; that second wait is not counted in the metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from features.events import NodeStatus
from service.service_level import Metrics, MetricsReport

GONE_MEMORY: Final = 1024


class NodeState(StrEnum):
    REQUESTED = "requested"
    """Create sent, no id yet."""
    BOOTING = "booting"
    READY = "ready"
    """Ready and idle."""
    ALLOCATED = "allocated"
    TERMINATING = "terminating"
    GONE = "gone"


class ConnectResult(StrEnum):
    INSTANT = "instant"
    """Served at once by an idle ready node."""
    WAITING = "waiting"
    DUPLICATE = "duplicate"
    """Already connected (allocated or waiting): nothing changes."""


class AllocatedNodeError(ValueError):
    """An attempt to terminate a node that is not idle ready or booting."""


@dataclass(slots=True)
class PoolNode:
    node_id: str | None
    """None while requested."""
    token: str | None
    """The request token (None for an adopted node)."""
    state: NodeState
    created_at: float
    """Create request time (adoption time for an adopted node): node time counts from here."""
    ready_at: float | None = None
    idle_since: float | None = None
    """Set while ready and idle."""
    user_id: str | None = None
    """Set while allocated."""
    allocated_at: float | None = None
    """Set while allocated: since when (its busy time counts from here)."""
    adopted: bool = False
    known_at: float | None = None
    """When the pool learned the node's id (its create answered, or its adoption)."""
    terminating_at: float | None = None
    """Set while terminating: when the core decided to terminate it."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "token": self.token,
            "state": self.state.value,
            "created_at": self.created_at,
            "ready_at": self.ready_at,
            "idle_since": self.idle_since,
            "user_id": self.user_id,
            "allocated_at": self.allocated_at,
            "adopted": self.adopted,
            "known_at": self.known_at,
            "terminating_at": self.terminating_at,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PoolNode:
        return cls(
            node_id=data["node_id"],
            token=data["token"],
            state=NodeState(data["state"]),
            created_at=float(data["created_at"]),
            ready_at=_opt_float(data.get("ready_at")),
            idle_since=_opt_float(data.get("idle_since")),
            user_id=data.get("user_id"),
            allocated_at=_opt_float(data.get("allocated_at")),
            adopted=bool(data.get("adopted", False)),
            known_at=_opt_float(data.get("known_at")),
            terminating_at=_opt_float(data.get("terminating_at")),
        )


@dataclass(slots=True)
class Waiting:
    """A connected user without a node yet."""

    since: float
    counted: bool = True
    """False for a user re-queued after losing its node: its wait is not a connect's wait."""


@dataclass(frozen=True, slots=True)
class PoolCounts:
    requested: int
    booting: int
    ready: int
    """Idle ready nodes."""
    allocated: int
    terminating: int
    waiting: int
    """Connected users without a node."""

    @property
    def coming(self) -> int:
        """Nodes on their way to ready (requested or booting)."""
        return self.requested + self.booting

    @property
    def live(self) -> int:
        """Nodes that count against the budget: every state but gone."""
        return self.requested + self.booting + self.ready + self.allocated + self.terminating

    @property
    def warm(self) -> int:
        """Idle ready plus coming nodes, minus those the waiting users will take.

        Negative when more users wait than nodes are coming.
        """
        return self.ready + self.coming - self.waiting

    def to_dict(self) -> dict[str, int]:
        return {
            "requested": self.requested,
            "booting": self.booting,
            "ready": self.ready,
            "allocated": self.allocated,
            "terminating": self.terminating,
            "waiting": self.waiting,
            "live": self.live,
            "warm": self.warm,
        }


@dataclass(frozen=True, slots=True)
class PoolView:
    """What the scaler sees of the pool."""

    counts: PoolCounts
    idle: tuple[tuple[str, float], ...]
    """Idle ready nodes as ``(node_id, idle_since)``, idle the longest first."""
    booting: tuple[tuple[str, float], ...]
    """Booting nodes as ``(node_id, created_at)``, oldest first."""
    allocated: frozenset[str] = field(default_factory=frozenset)
    """Ids of allocated nodes (never to be terminated)."""

    def terminable(self) -> tuple[str, ...]:
        """The nodes a core may terminate, in the order they go: booting newest first, then
        idle ones idle the longest first."""
        booting = [node_id for node_id, _ in sorted(self.booting, key=lambda b: -b[1])]
        idle = [node_id for node_id, _ in sorted(self.idle, key=lambda i: i[1])]
        return tuple(n for n in (*booting, *idle) if n not in self.allocated)


class NodePool:
    def __init__(self, metrics: Metrics | None = None) -> None:
        self.metrics = metrics if metrics is not None else Metrics()
        self._requested: dict[str, PoolNode] = {}  # token -> node
        self._nodes: dict[str, PoolNode] = {}  # node id -> node (every state but gone)
        self._idle: dict[str, None] = {}  # ordered by idle_since
        self._booting: dict[str, None] = {}
        self._terminating: dict[str, None] = {}
        self._allocated: dict[str, str] = {}  # user id -> node id
        self._waiting: dict[str, Waiting] = {}  # FIFO
        self._gone: dict[str, None] = {}  # the last GONE_MEMORY gone ids

    # -- requests --------------------------------------------------------------------------

    def request(self, token: str, now: float) -> PoolNode:
        """Record a create request (the engine emits ``RequestNode(token)``)."""
        if token in self._requested:
            raise ValueError(f"token {token!r} is already pending")
        node = PoolNode(None, token, NodeState.REQUESTED, now)
        self._requested[token] = node
        return node

    def created(self, token: str, node_id: str, now: float) -> PoolNode | None:
        """The node API created the node of ``token`` as ``node_id``; None for an unknown token."""
        node = self._requested.pop(token, None)
        if node is None:
            return None
        self.metrics.nodes_created += 1
        if node_id in self._gone:  # its termination was reported before its creation
            self.metrics.node_gone(node.created_at, now)
            return None
        known = self._nodes.get(node_id)
        if known is not None:  # adopted from a status event that came first: merge
            known.token = token
            known.created_at = min(known.created_at, node.created_at)
            if known.adopted:
                known.adopted = False
                self.metrics.nodes_adopted -= 1
                self.metrics.nodes_created -= 1
            return known
        node.node_id = node_id
        node.known_at = now
        node.state = NodeState.BOOTING
        self._nodes[node_id] = node
        self._booting[node_id] = None
        return node

    def request_failed(self, token: str, now: float) -> bool:
        """The create of ``token`` failed: no node, no node time. False for an unknown token."""
        if self._requested.pop(token, None) is None:
            return False
        self.metrics.requests_failed += 1
        return True

    # -- node status -----------------------------------------------------------------------

    def node_status(self, node_id: str, status: NodeStatus, now: float) -> None:
        """Apply a ``node:status`` event (see the module doc for unknown ids)."""
        node = self._nodes.get(node_id)
        if status is NodeStatus.TERMINATED:
            if node is not None:
                self._gone_now(node, now)
            return
        if node is None:
            if node_id not in self._gone:
                self._adopt(node_id, status, now)
            return
        if status is NodeStatus.READY and node.state is NodeState.BOOTING:
            del self._booting[node_id]
            node.ready_at = now
            self._make_idle(node, now)
            self._serve_waiting(now)

    def terminate(self, node_id: str, now: float) -> PoolNode:
        """Mark an idle ready or booting node terminating (the engine emits ``TerminateNode``)."""
        node = self._nodes.get(node_id)
        if node is None or node.state not in (NodeState.READY, NodeState.BOOTING):
            state = "unknown" if node is None else node.state.value
            raise AllocatedNodeError(f"node {node_id!r} is {state}: only idle or booting nodes go")
        if node.state is NodeState.READY:
            del self._idle[node_id]
            node.idle_since = None
        else:
            del self._booting[node_id]
        node.state = NodeState.TERMINATING
        node.terminating_at = now
        self._terminating[node_id] = None
        return node

    def deleted(self, node_id: str, now: float) -> None:
        """The shell reports the node deleted (same as its ``terminated`` status)."""
        self.node_status(node_id, NodeStatus.TERMINATED, now)

    # -- users -----------------------------------------------------------------------------

    def connect(self, user_id: str, now: float) -> ConnectResult:
        if user_id in self._allocated or user_id in self._waiting:
            self.metrics.duplicate_connects += 1
            return ConnectResult.DUPLICATE
        if self._idle:
            node_id = next(reversed(self._idle))  # idle the shortest time
            self._allocate(self._nodes[node_id], user_id, now)
            self.metrics.connect(user_id, now, instant=True)
            return ConnectResult.INSTANT
        self._waiting[user_id] = Waiting(now)
        self.metrics.connect(user_id, now, instant=False)
        return ConnectResult.WAITING

    def disconnect(self, user_id: str, now: float) -> bool:
        """End the user's session; its node, if any, returns to the pool idle. False if unknown."""
        waiting = self._waiting.pop(user_id, None)
        node_id = self._allocated.pop(user_id, None)
        if waiting is None and node_id is None:
            self.metrics.orphan_disconnects += 1
            return False
        self.metrics.disconnect(user_id, now, abandoned=waiting is not None and waiting.counted)
        if node_id is not None:
            node = self._nodes[node_id]
            self._release(node, now)
            self._make_idle(node, now)
            self._serve_waiting(now)
        return True

    # -- reading ---------------------------------------------------------------------------

    def counts(self) -> PoolCounts:
        return PoolCounts(
            requested=len(self._requested),
            booting=len(self._booting),
            ready=len(self._idle),
            allocated=len(self._allocated),
            terminating=len(self._terminating),
            waiting=len(self._waiting),
        )

    def view(self) -> PoolView:
        idle = tuple((i, _float(self._nodes[i].idle_since)) for i in self._idle)
        booting = tuple((i, self._nodes[i].created_at) for i in self._booting)
        return PoolView(self.counts(), idle, booting, frozenset(self._allocated.values()))

    def node(self, node_id: str) -> PoolNode | None:
        return self._nodes.get(node_id)

    def nodes(self) -> list[PoolNode]:
        """Nodes not gone: requested ones first, then the others in the order they came."""
        return [*self._requested.values(), *self._nodes.values()]

    def gone_ids(self) -> frozenset[str]:
        """Ids of the last ``GONE_MEMORY`` nodes that went (late news of them is ignored)."""
        return frozenset(self._gone)

    def busy_users(self) -> list[str]:
        """Users who hold a node now."""
        return list(self._allocated)

    def session_start(self, user_id: str) -> float | None:
        """When the user's open session began (its connect); None without one."""
        return self.metrics.sessions.get(user_id)

    def busy_session_ages(self, now: float) -> list[float]:
        """How long each user who holds a node has been connected, at ``now``."""
        sessions = self.metrics.sessions
        return [now - sessions[user] for user in self._allocated if user in sessions]

    def node_of(self, user_id: str) -> str | None:
        return self._allocated.get(user_id)

    def is_waiting(self, user_id: str) -> bool:
        return user_id in self._waiting

    def is_connected(self, user_id: str) -> bool:
        return user_id in self._allocated or user_id in self._waiting

    def open_node_seconds(self, now: float) -> float:
        return sum(max(0.0, now - n.created_at) for n in self.nodes())

    def open_busy_node_seconds(self, now: float) -> float:
        nodes = (self._nodes[node_id] for node_id in self._allocated.values())
        return sum(max(0.0, now - n.allocated_at) for n in nodes if n.allocated_at is not None)

    def report(self, now: float) -> MetricsReport:
        return self.metrics.report(
            now, self.open_node_seconds(now), self.open_busy_node_seconds(now)
        )

    # -- state -----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "requested": [n.to_dict() for n in self._requested.values()],
            "nodes": [n.to_dict() for n in self._nodes.values()],
            "idle": list(self._idle),
            "booting": list(self._booting),
            "terminating": list(self._terminating),
            "waiting": [[u, w.since, w.counted] for u, w in self._waiting.items()],
            "gone": list(self._gone),
            "metrics": self.metrics.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NodePool:
        pool = cls(Metrics.from_dict(data["metrics"]))
        for raw in data["requested"]:
            node = PoolNode.from_dict(raw)
            if node.token is None or node.state is not NodeState.REQUESTED:
                raise ValueError(f"a requested node needs a token: {raw!r}")
            pool._requested[node.token] = node
        for raw in data["nodes"]:
            node = PoolNode.from_dict(raw)
            if node.node_id is None:
                raise ValueError(f"a node past requested needs an id: {raw!r}")
            pool._nodes[node.node_id] = node
            if node.state is NodeState.ALLOCATED:
                if node.user_id is None:
                    raise ValueError(f"an allocated node needs a user: {raw!r}")
                pool._allocated[node.user_id] = node.node_id
        pool._idle = dict.fromkeys(data["idle"])
        pool._booting = dict.fromkeys(data["booting"])
        pool._terminating = dict.fromkeys(data["terminating"])
        for name, state in (
            ("_idle", NodeState.READY),
            ("_booting", NodeState.BOOTING),
            ("_terminating", NodeState.TERMINATING),
        ):
            index: dict[str, None] = getattr(pool, name)
            want = {i for i, n in pool._nodes.items() if n.state is state}
            if set(index) != want:
                raise ValueError(f"pool state is inconsistent: {name} != nodes in {state.value}")
        pool._waiting = {str(u): Waiting(float(s), bool(c)) for u, s, c in data["waiting"]}
        pool._gone = dict.fromkeys(data["gone"])
        return pool

    # -- internals -------------------------------------------------------------------------

    def _adopt(self, node_id: str, status: NodeStatus, now: float) -> None:
        node = PoolNode(node_id, None, NodeState.BOOTING, now, adopted=True, known_at=now)
        self._nodes[node_id] = node
        self.metrics.nodes_created += 1
        self.metrics.nodes_adopted += 1
        if status is NodeStatus.BOOTING:
            self._booting[node_id] = None
            return
        node.ready_at = now
        self._make_idle(node, now)
        self._serve_waiting(now)

    def _make_idle(self, node: PoolNode, now: float) -> None:
        assert node.node_id is not None
        node.state = NodeState.READY
        node.idle_since = now
        self._idle[node.node_id] = None

    def _allocate(self, node: PoolNode, user_id: str, now: float) -> None:
        assert node.node_id is not None
        del self._idle[node.node_id]
        node.state = NodeState.ALLOCATED
        node.idle_since = None
        node.user_id = user_id
        node.allocated_at = now
        self._allocated[user_id] = node.node_id

    def _release(self, node: PoolNode, now: float) -> None:
        """The allocated ``node`` serves its user no more: its busy time is counted."""
        if node.allocated_at is not None:
            self.metrics.node_freed(node.allocated_at, now)
        node.user_id = None
        node.allocated_at = None

    def _serve_waiting(self, now: float) -> None:
        while self._waiting and self._idle:
            user_id = next(iter(self._waiting))
            waiting = self._waiting.pop(user_id)
            self._allocate(self._nodes[next(reversed(self._idle))], user_id, now)
            if waiting.counted:
                self.metrics.served_after_wait(now - waiting.since)

    def _gone_now(self, node: PoolNode, now: float) -> None:
        assert node.node_id is not None
        node_id = node.node_id
        del self._nodes[node_id]
        self._idle.pop(node_id, None)
        self._booting.pop(node_id, None)
        self._terminating.pop(node_id, None)
        if node.state is NodeState.ALLOCATED and node.user_id is not None:
            user_id = node.user_id
            del self._allocated[user_id]
            self._release(node, now)
            # The user still needs a node: back to the head of the queue, wait not counted.
            self._waiting = {user_id: Waiting(now, counted=False), **self._waiting}
            self._serve_waiting(now)
        node.state = NodeState.GONE
        self.metrics.node_gone(node.created_at, now)
        self._gone[node_id] = None
        if len(self._gone) > GONE_MEMORY:
            del self._gone[next(iter(self._gone))]


def _opt_float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


def _float(value: float | None) -> float:
    assert value is not None
    return value
