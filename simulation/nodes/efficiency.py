"""The node API's efficiency report (``service.efficiency``) from the simulated fleet and the
users' connected time."""

from __future__ import annotations

from service.efficiency import Efficiency
from simulation.nodes.fleet import NodeFleet
from simulation.nodes.usertime import UserTime


def efficiency_report(users: UserTime, fleet: NodeFleet, now: float) -> Efficiency:
    return Efficiency.of(
        user_seconds=users.user_seconds(now),
        node_seconds=fleet.node_seconds(now),
        user_count=users.user_count,
        node_count=fleet.node_count,
    )
