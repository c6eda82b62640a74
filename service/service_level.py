"""The three numbers that judge the service, kept as it goes (docs/architecture.md, "Three
numbers"; computed the same way everywhere):

- **instant rate**: connects served at once by an idle ready node / all connects;
- **wait**: seconds from connect to a node, for the other connects (mean, p95);
- **efficiency**: connected user-seconds / node-seconds, a node counting from its create
  request to its termination, boot included.

Two more figures tell a runaway pool at a glance: **nodes per connect** (nodes created over
connects: about 1 for a pool that boots a node per session, below 1 when nodes are
reused, far above 1 when the pool churns) and the **idle share** of node time (the share
in which a node served no user: booting, idle ready or terminating).

User time runs from a connect to the next disconnect of the same user (an open session up
to ``now``), whether or not the user had a node yet, as the node API's ``UserTime`` counts
it. A connect that disconnects before any node reaches it is counted as a connect (not
instant) and as ``abandoned``, with no wait. The accumulator is plain data (a
``to_dict``/``from_dict`` round trip), fed by the pool; node time of nodes still alive is
added by the pool at report time. It does not grow with uptime: counters, the open
sessions, and the waits in a bounded histogram (``service.wait_histogram``: the mean exact,
the p95 within 1 %).
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Final

from service.wait_histogram import WaitHistogram

RECENT_WAITS: Final = 4096
"""Waits kept one by one for the shell's telemetry (``Metrics.waits_after``); not saved."""
_UNSAVED: Final = frozenset({"waits", "recent_waits"})
"""``Metrics`` fields ``to_dict`` does not copy as they are (the waits go as their state)."""


def nodes_per_connect(nodes_created: int, connects: int) -> float:
    """``nodes_created / connects`` (over one connect when there was none)."""
    return nodes_created / max(1, connects)


def idle_share(busy_node_seconds: float, node_seconds: float) -> float:
    """``1 - busy_node_seconds / node_seconds``, within [0, 1]; 0.0 without node time."""
    if node_seconds <= 0:
        return 0.0
    return min(1.0, max(0.0, 1.0 - busy_node_seconds / node_seconds))


@dataclass(frozen=True, slots=True)
class MetricsReport:
    connects: int
    instant: int
    instant_rate: float
    """``instant / connects``; 1.0 when there was no connect (nobody waited)."""
    waited: int
    """Connects that got a node after waiting."""
    mean_wait_s: float
    """Over the connects that waited; 0.0 when none did."""
    p95_wait_s: float
    abandoned: int
    """Connects that disconnected before a node reached them."""
    user_seconds: float
    node_seconds: float
    efficiency: float
    """``user_seconds / node_seconds`` (a fraction); 0.0 without node time."""
    nodes_created: int
    """Nodes the pool obtained (created on our request, or adopted)."""
    busy_node_seconds: float = 0.0
    """Node-seconds in which a node was allocated to a user."""

    @property
    def nodes_per_connect(self) -> float:
        return nodes_per_connect(self.nodes_created, self.connects)

    @property
    def idle_share(self) -> float:
        return idle_share(self.busy_node_seconds, self.node_seconds)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {
            "nodes_per_connect": self.nodes_per_connect,
            "idle_share": self.idle_share,
        }


@dataclass(slots=True)
class Metrics:
    connects: int = 0
    instant: int = 0
    waits: WaitHistogram = field(default_factory=WaitHistogram)
    abandoned: int = 0
    duplicate_connects: int = 0
    orphan_disconnects: int = 0
    nodes_created: int = 0
    nodes_adopted: int = 0
    requests_failed: int = 0
    closed_user_seconds: float = 0.0
    closed_node_seconds: float = 0.0
    closed_busy_node_seconds: float = 0.0
    sessions: dict[str, float] = field(default_factory=dict)
    """Open sessions: user id -> connect time."""
    recent_waits: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT_WAITS))
    """The last waits one by one, for telemetry (``waits_after``); not saved."""

    # -- recording (each O(1)) -------------------------------------------------------------

    def connect(self, user_id: str, now: float, *, instant: bool) -> None:
        self.sessions[user_id] = now
        self.connects += 1
        if instant:
            self.instant += 1

    def served_after_wait(self, wait_s: float) -> None:
        wait_s = max(0.0, wait_s)
        self.waits.add(wait_s)
        self.recent_waits.append(wait_s)

    def waits_after(self, seen: int) -> list[float]:
        """The waits after the first ``seen`` ones (the most recent ``RECENT_WAITS`` of them
        at most), for a reader that keeps its own count of what it has seen."""
        new = self.waits.count - seen
        if new <= 0:
            return []
        recent = self.recent_waits
        return list(itertools.islice(recent, max(0, len(recent) - new), None))

    def disconnect(self, user_id: str, now: float, *, abandoned: bool) -> None:
        start = self.sessions.pop(user_id, None)
        if start is None:
            self.orphan_disconnects += 1
            return
        self.closed_user_seconds += max(0.0, now - start)
        if abandoned:
            self.abandoned += 1

    def node_gone(self, created_at: float, gone_at: float) -> None:
        self.closed_node_seconds += max(0.0, gone_at - created_at)

    def node_freed(self, allocated_at: float, freed_at: float) -> None:
        """A node allocated at ``allocated_at`` served no user any more from ``freed_at``."""
        self.closed_busy_node_seconds += max(0.0, freed_at - allocated_at)

    # -- reading ---------------------------------------------------------------------------

    def user_seconds(self, now: float) -> float:
        return self.closed_user_seconds + sum(max(0.0, now - s) for s in self.sessions.values())

    def report(
        self, now: float, open_node_seconds: float, open_busy_node_seconds: float = 0.0
    ) -> MetricsReport:
        user_s = self.user_seconds(now)
        node_s = self.closed_node_seconds + open_node_seconds
        waits = self.waits
        return MetricsReport(
            connects=self.connects,
            instant=self.instant,
            instant_rate=self.instant / self.connects if self.connects else 1.0,
            waited=waits.count,
            mean_wait_s=waits.mean(),
            p95_wait_s=waits.quantile(0.95),
            abandoned=self.abandoned,
            user_seconds=user_s,
            node_seconds=node_s,
            efficiency=user_s / node_s if node_s > 0 else 0.0,
            nodes_created=self.nodes_created,
            busy_node_seconds=self.closed_busy_node_seconds + open_busy_node_seconds,
        )

    # -- state -----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        # saved after every batch: read the fields, without asdict's deep copy of the
        # histogram and of the recent waits (which are not saved)
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _UNSAVED}
        data["waits"] = self.waits.to_dict()
        data["sessions"] = dict(self.sessions)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Metrics:
        metrics = cls(**{k: v for k, v in data.items() if k not in ("waits", "sessions")})
        waits = data.get("waits", [])
        # state saved before the histogram held every wait in a list
        metrics.waits = (
            WaitHistogram.of(waits) if isinstance(waits, list) else WaitHistogram.from_dict(waits)
        )
        metrics.sessions = {str(u): float(t) for u, t in data.get("sessions", {}).items()}
        for name in ("closed_user_seconds", "closed_node_seconds", "closed_busy_node_seconds"):
            value = getattr(metrics, name)
            if not math.isfinite(value):
                raise ValueError(f"{name} is not finite: {value!r}")
        return metrics
