"""The pool over time, for the dashboard: a bounded ring of one point per tick.

The live shell records the engine's status after each tick; ``GET /v1/history`` serves the
points, all of them or those after ``since`` (incremental polling). Memory is bounded twice:
by ``max_points`` and by ``window_s`` of clock time behind the newest point. Times are the
service clock's (accelerated in demos and tests). Nothing is saved: a restarted service
starts with an empty history.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from service.engine import EngineStatus

DEFAULT_WINDOW_S = 2 * 3600.0
DEFAULT_MAX_POINTS = 7200
"""Two hours of ticks at one a second (the default tick is 10 s: 720 points)."""


@dataclass(frozen=True, slots=True)
class PoolHistoryPoint:
    t: float
    counts: dict[str, int]
    """Nodes by state (``PoolCounts.to_dict``: also ``waiting``, ``live`` and ``warm``)."""
    desired_warm: int | None
    warm: int
    instant_rate: float
    efficiency: float
    expected_demand: float | None
    connects: int

    @classmethod
    def of(cls, status: EngineStatus) -> PoolHistoryPoint:
        return cls(
            t=status.at,
            counts=status.counts.to_dict(),
            desired_warm=status.desired_warm,
            warm=status.counts.warm,
            instant_rate=status.metrics.instant_rate,
            efficiency=status.metrics.efficiency,
            expected_demand=status.expected_demand,
            connects=status.metrics.connects,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "t": self.t,
            "counts": dict(self.counts),
            "desired_warm": self.desired_warm,
            "warm": self.warm,
            "instant_rate": self.instant_rate,
            "efficiency": self.efficiency,
            "expected_demand": self.expected_demand,
            "connects": self.connects,
        }


class PoolHistory:
    """Points in time order; recording and reading new points are O(new points)."""

    def __init__(
        self, *, window_s: float = DEFAULT_WINDOW_S, max_points: int = DEFAULT_MAX_POINTS
    ) -> None:
        if not window_s > 0:
            raise ValueError(f"window_s must be > 0, not {window_s}")
        if max_points < 1:
            raise ValueError(f"max_points must be >= 1, not {max_points}")
        self.window_s = window_s
        self.max_points = max_points
        self._points: deque[PoolHistoryPoint] = deque(maxlen=max_points)

    def __len__(self) -> int:
        return len(self._points)

    def record(self, status: EngineStatus) -> PoolHistoryPoint:
        """Add the status after a tick; drops what falls out of the window."""
        point = PoolHistoryPoint.of(status)
        points = self._points
        while points and points[-1].t >= point.t:  # a clock that stepped back: keep order
            points.pop()
        points.append(point)
        oldest = point.t - self.window_s
        while points[0].t < oldest:
            points.popleft()
        return point

    def points(self, since: float | None = None) -> list[PoolHistoryPoint]:
        """All points, or those strictly after ``since``, oldest first."""
        if since is None:
            return list(self._points)
        newer: list[PoolHistoryPoint] = []
        for point in reversed(self._points):
            if point.t <= since:
                break
            newer.append(point)
        newer.reverse()
        return newer

    def to_dict(self, since: float | None = None) -> dict[str, Any]:
        return {
            "window_s": self.window_s,
            "max_points": self.max_points,
            "points": [point.to_dict() for point in self.points(since)],
        }
