"""``churn``: a ``habits`` population whose people come and go for good.

The population present at any time is about ``users`` people (default 300), in cohorts: every
day at midnight UTC a new cohort of ``users / lifetime_days`` habits users arrives, and each
cohort stays ``lifetime_days`` days (default 2), then leaves for good (sessions open at its
departure run to their end; no user of it is seen again). At ``start`` the cohorts that
arrived before it are already there, so the population is full from the first hour. Each
cohort is a habits population of its own (its own seed, so its own user ids).

This is what a service deployed for months meets: the users it tracks today are not the
ones it tracked last month, and state kept per user must not pile up with the departed.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Iterator
from typing import Final

from features.events import UserEvent
from simulation.workloads.base import DAY_S, DEFAULT_START, SimUser, check_window
from simulation.workloads.departure import until
from simulation.workloads.habits import habits_workload
from simulation.workloads.personas import habits_population

CHURN_USERS: Final = 300
"""Users present at any time by default."""
CHURN_LIFETIME_DAYS: Final = 2
"""Days each cohort stays."""


def cohort_seed(seed: int, cohort: int) -> int:
    """The habits seed of cohort ``cohort`` (counted in days since the epoch)."""
    return seed * 1_000_003 + cohort


def churn_users(seed: int, users: int | None) -> tuple[SimUser, ...]:
    """The users present at ``DEFAULT_START`` (later cohorts are new people)."""
    first = int(DEFAULT_START // DAY_S)
    size = _cohort_size(users)
    return tuple(
        persona.user
        for cohort in range(first - CHURN_LIFETIME_DAYS + 1, first + 1)
        for persona in habits_population(cohort_seed(seed, cohort), size)
    )


def churn_workload(
    *,
    hours: float,
    seed: int,
    start: float = DEFAULT_START,
    users: int | None = None,
) -> Iterator[UserEvent]:
    """The events of ``[start, start + hours h)``, lazily, sorted by ``ts``; ``hours`` may be
    ``math.inf`` (cohorts keep coming)."""
    end = check_window(hours, start)
    return _merged(seed, _cohort_size(users), start, end)


def _cohort_size(users: int | None) -> int:
    total = CHURN_USERS if users is None else users
    if total < CHURN_LIFETIME_DAYS:
        raise ValueError(f"churn needs at least {CHURN_LIFETIME_DAYS} users, not {total}")
    return total // CHURN_LIFETIME_DAYS


def _cohort(seed: int, size: int, cohort: int, start: float, end: float) -> Iterator[UserEvent]:
    """Cohort ``cohort``'s events within ``[start, end)``: it arrives at the start of day
    ``cohort`` (or at ``start``, if it came before) and leaves ``CHURN_LIFETIME_DAYS`` later."""
    arrive = max(start, float(cohort * DAY_S))
    leave = float((cohort + CHURN_LIFETIME_DAYS) * DAY_S)
    events = habits_workload(
        hours=(min(end, leave + DAY_S) - arrive) / 3600.0,
        seed=cohort_seed(seed, cohort),
        start=arrive,
        users=size,
    )
    return (e for e in until(events, leave) if e.ts < end)


def _merged(seed: int, size: int, start: float, end: float) -> Iterator[UserEvent]:
    """The cohorts' events in time order; a cohort joins the merge when its day begins."""
    first = int(start // DAY_S) - CHURN_LIFETIME_DAYS + 1
    last = math.inf if math.isinf(end) else int(end // DAY_S)
    heap: list[tuple[float, int, int, UserEvent, Iterator[UserEvent]]] = []
    order = itertools.count()  # ties in time: the earlier cohort, then generation order

    def join(cohort: int) -> None:
        events = _cohort(seed, size, cohort, start, end)
        event = next(events, None)
        if event is not None:
            heapq.heappush(heap, (event.ts, cohort, next(order), event, events))

    cohort = first
    while cohort <= int(start // DAY_S):
        join(cohort)
        cohort += 1
    while True:
        arrival = float(cohort * DAY_S)
        if cohort <= last and arrival < end and (not heap or heap[0][0] >= arrival):
            join(cohort)
            cohort += 1
            continue
        if not heap:
            return
        _, index, _, event, events = heapq.heappop(heap)
        yield event
        following = next(events, None)
        if following is not None:
            heapq.heappush(heap, (following.ts, index, next(order), following, events))
