"""A population that changes: one workload's users leave at a moment and another's arrive.

The users of ``before`` act until ``change_at``: from then on none of them starts anything,
and those connected at that moment only disconnect, when their session ends. The users of
``after`` (a population of their own, their workload generated from ``change_at``) act
from then on. The two populations share no user (each draws its own ids).

This is the drift a model serving for weeks meets: the people it was trained on are not
the ones it scores now.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator

from features.events import UserEvent
from simulation.workloads.base import DEFAULT_START, check_window
from simulation.workloads.catalog import generate
from simulation.workloads.departure import until


def population_change(
    before: str,
    after: str,
    *,
    hours: float,
    change_at_h: float,
    seed: int,
    start: float = DEFAULT_START,
    users_before: int | None = None,
    users_after: int | None = None,
) -> Iterator[UserEvent]:
    """The events in ``[start, start + hours h)``, sorted by ``ts``: ``before``'s users until
    ``change_at_h`` hours after ``start`` (their sessions then open running to their end),
    ``after``'s from then on (generated with ``seed + 1``, so that two workloads of one
    kind are two populations)."""
    end = check_window(hours, start)
    if not 0 < change_at_h < hours:
        raise ValueError(f"change_at_h must be inside (0, {hours}), not {change_at_h!r}")
    change_at = start + change_at_h * 3600.0
    leaving = until(
        generate(before, hours=hours, seed=seed, start=start, users=users_before), change_at
    )
    arriving = generate(
        after, hours=(end - change_at) / 3600.0, seed=seed + 1, start=change_at, users=users_after
    )
    return heapq.merge(leaving, arriving, key=lambda event: event.ts)
