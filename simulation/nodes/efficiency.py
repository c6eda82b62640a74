"""The efficiency report of the node API: connected user time over node time."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from simulation.nodes.fleet import NodeFleet
from simulation.nodes.usertime import UserTime


@dataclass(frozen=True, slots=True)
class EfficiencyReport:
    """The body of ``GET /api/efficiency``; field names are the seed's."""

    total_user_time_seconds: float
    total_node_time_seconds: float
    efficiency_percentage: float
    """User time / node time * 100; 0 when there is no node time."""
    user_count: int
    """Users ever seen connecting."""
    node_count: int
    """Nodes ever created (terminated ones included)."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def efficiency(user_seconds: float, node_seconds: float) -> float:
    return user_seconds / node_seconds * 100.0 if node_seconds > 0 else 0.0


def efficiency_report(users: UserTime, fleet: NodeFleet, now: float) -> EfficiencyReport:
    user_s = users.user_seconds(now)
    node_s = fleet.node_seconds(now)
    return EfficiencyReport(
        total_user_time_seconds=user_s,
        total_node_time_seconds=node_s,
        efficiency_percentage=efficiency(user_s, node_s),
        user_count=users.user_count,
        node_count=fleet.node_count,
    )
