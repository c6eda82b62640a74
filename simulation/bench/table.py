"""The human table of a bench (rich), on stderr beside the JSON."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from simulation.bench.policy_run import PolicyResult

if TYPE_CHECKING:
    from rich.table import Table


def render_table(results: Sequence[PolicyResult], *, title: str | None = None) -> Table:
    """The human table of a bench (rich); ``title`` is shown as written (no markup)."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=None if title is None else Text(title))
    table.add_column("policy", no_wrap=True)
    for name in ("connects", "instant", "mean wait", "p95 wait", "efficiency"):
        table.add_column(name, justify="right", no_wrap=True)
    for name in ("node h", "user h", "nodes", "per connect", "idle", "wall s"):
        table.add_column(name, justify="right", no_wrap=True)
    for r in results:
        table.add_row(
            r.policy,
            f"{r.run.connects}",
            f"{r.run.instant_rate:.4f}",
            f"{r.run.mean_wait_s:.1f} s",
            f"{r.run.p95_wait_s:.1f} s",
            f"{r.run.efficiency:.3f}",
            f"{r.run.node_seconds / 3600:.1f}",
            f"{r.run.user_seconds / 3600:.1f}",
            f"{r.run.nodes_created}",
            f"{r.run.nodes_per_connect:.2f}",
            f"{r.run.idle_share:.3f}",
            f"{r.wall_s:.1f}",
        )
    return table
