"""The efficiency report of the node API, ``GET /api/efficiency``: connected user time over
node time, under the original node API's field names.

The simulated node API answers it from its fleet (``simulation.nodes.efficiency``), the
service from its pool (``service.app``), so a dashboard or a script written for the original
reads either.
"""

from __future__ import annotations

from pydantic import BaseModel


class Efficiency(BaseModel):
    total_user_time_seconds: float
    total_node_time_seconds: float
    efficiency_percentage: float
    """User time / node time * 100; 0 when there is no node time."""
    user_count: int
    """Users ever seen connecting."""
    node_count: int
    """Nodes ever created (terminated ones included)."""

    @classmethod
    def of(
        cls, *, user_seconds: float, node_seconds: float, user_count: int, node_count: int
    ) -> Efficiency:
        return cls(
            total_user_time_seconds=user_seconds,
            total_node_time_seconds=node_seconds,
            efficiency_percentage=user_seconds / node_seconds * 100.0 if node_seconds > 0 else 0.0,
            user_count=user_count,
            node_count=node_count,
        )
