"""Planning a workload one UTC day at a time: what ``habits`` and ``shifts`` share.

A workload with daily habits is a :class:`DayPlanner`: ``plan(day)`` returns the events it
plans for that day (a session may run into the next day), as :data:`Entry` tuples, and
:func:`emit` turns the plans into events sorted by time, lazily, planning one day ahead of
what it emits so that memory stays bounded on long runs. The helpers are the building
blocks of every plan: a burst of activity, a session with light activity in it, sessions
of one user kept apart, background activity by a day profile.

Every draw comes from the ``random.Random`` a caller hands in (one per user), in the order
the helpers document, so a workload is a pure function of its seed and parameters.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections.abc import Iterator, Sequence
from typing import Final, Protocol

from features.events import UserActivity, UserConnect, UserDisconnect, UserEvent
from simulation.workloads.base import DAY_S
from simulation.workloads.draws import DayProfile, poisson

ACTIVITY: Final = 0
CONNECT: Final = 1
DISCONNECT: Final = 2

Entry = tuple[int, int, int, int]
"""A planned event: (ms since the epoch, sequence number, kind, user index)."""


class PlannedUser(Protocol):
    """A user of a day-planned workload: its id and the seed of its own generator."""

    @property
    def user_id(self) -> str: ...

    @property
    def rng_seed(self) -> int: ...


class DayParams(Protocol):
    """The parameters every day-planned workload has (``HabitsParams``, ``ShiftsParams``)."""

    @property
    def min_session_gap_s(self) -> float: ...

    @property
    def session_activity_per_hour(self) -> float: ...

    @property
    def hourly_profile(self) -> tuple[float, ...]: ...

    @property
    def background_per_hour(self) -> float: ...

    @property
    def weekend_factor(self) -> float: ...


class DayPlanner:
    """Plans one UTC day at a time for every user, keeping what carries over (busy until).

    Subclasses implement :meth:`plan_day` with the helpers below; a plan for day ``d``
    must only hold events at or after the start of day ``d - 1``.
    """

    def __init__(self, users: Sequence[PlannedUser], params: DayParams, start: float) -> None:
        self.user_ids = tuple(user.user_id for user in users)
        self.rngs = [random.Random(user.rng_seed) for user in users]
        self.profile = DayProfile(params.hourly_profile)
        """When in a day bursts, background activity and unscheduled sessions happen."""
        self.background_per_day = params.background_per_hour * 24 * self.profile.mean_fraction
        self.weekend_factor = params.weekend_factor
        self.start_ms = round(start * 1000)
        self.free_at_ms = [-math.inf] * len(self.user_ids)
        self.min_session_gap_s = params.min_session_gap_s
        self.session_activity_per_hour = params.session_activity_per_hour
        self.seq = itertools.count()
        self.out: list[Entry] = []

    def plan(self, day: int) -> list[Entry]:
        """The events planned for UTC day ``day`` (days since the epoch)."""
        self.out = []
        self.plan_day(day)
        return self.out

    def plan_day(self, day: int) -> None:
        raise NotImplementedError

    def free_at(self, index: int) -> float:
        """When user ``index`` may start its next session (seconds; -inf: at once)."""
        return self.free_at_ms[index] / 1000

    def session(self, rng: random.Random, index: int, connect_ms: int, length_s: float) -> float:
        """A connect at ``connect_ms``, light activity while connected (exponential gaps:
        draws from ``rng``) and the disconnect ``length_s`` later; its end, in seconds.

        A session begun before the workload's start keeps no disconnect (it is out of the
        window), and the user is busy until ``min_session_gap_s`` after its end.
        """
        disconnect_ms = connect_ms + round(length_s * 1000)
        self.add(connect_ms, CONNECT, index)
        rate_per_ms = self.session_activity_per_hour / 3_600_000
        if rate_per_ms > 0:
            t = connect_ms + rng.expovariate(rate_per_ms)
            while t < disconnect_ms:
                self.add(math.floor(t), ACTIVITY, index)
                t += rng.expovariate(rate_per_ms)
        if connect_ms >= self.start_ms:
            self.add(disconnect_ms, DISCONNECT, index)
        self.free_at_ms[index] = disconnect_ms + self.min_session_gap_s * 1000
        return disconnect_ms / 1000

    def burst(
        self,
        rng: random.Random,
        index: int,
        end_ms: int,
        length_s: float,
        *,
        gap_s: float,
        min_events: int,
    ) -> None:
        """Activity over the ``length_s`` before ``end_ms``, up to (not at) it: exponential
        gaps around ``gap_s``, then uniform times until there are ``min_events``."""
        begin_ms = end_ms - max(1, round(length_s * 1000))
        rate_per_ms = 1 / (gap_s * 1000)
        times: list[int] = []
        t: float = begin_ms
        while t < end_ms:
            times.append(math.floor(t))
            t += rng.expovariate(rate_per_ms)
        while len(times) < min_events:
            times.append(rng.randrange(begin_ms, end_ms))
        for ms in times:
            self.add(ms, ACTIVITY, index)

    def background(self, rng: random.Random, index: int, midnight: float, weekend: bool) -> None:
        """Sparse single activity events over the day, by the day profile (a Poisson count,
        ``weekend_factor`` of it on weekends)."""
        mean = self.background_per_day * (self.weekend_factor if weekend else 1.0)
        for _ in range(poisson(rng, mean)):
            self.add(math.floor((midnight + self.profile.time_of_day(rng)) * 1000), ACTIVITY, index)

    def add(self, ms: int, kind: int, index: int) -> None:
        self.out.append((ms, next(self.seq), kind, index))


def weekday(day: int) -> int:
    """Monday 0 ... Sunday 6 of the UTC day ``day`` (days since the epoch, a Thursday)."""
    return (day + 3) % 7


def emit(planner: DayPlanner, start: float, end: float) -> Iterator[UserEvent]:
    """The planner's events in ``[start, end)``, sorted by time (ties in planning order)."""
    start_ms = round(start * 1000)
    end_ms = math.inf if math.isinf(end) else round(end * 1000)
    ids = planner.user_ids
    pending: list[Entry] = []
    day = math.floor(start / DAY_S)
    emitted_until = -math.inf
    # A plan for day d only holds events at or after the start of day d - 1, so once day d
    # is planned, everything before the start of day d is final.
    while (day - 1) * DAY_S * 1000 < end_ms:
        pending.extend(planner.plan(day))
        pending.sort()
        if pending and pending[0][0] < emitted_until:
            raise RuntimeError(f"day {day} planned an event before the emitted ones: a bug")
        watermark = day * DAY_S * 1000
        emitted_until = watermark
        cut = bisect.bisect_left(pending, (watermark,))
        ready, pending = pending[:cut], pending[cut:]
        for ms, _seq, kind, index in ready:
            if ms < start_ms:
                continue
            if ms >= end_ms:
                return
            yield _event(ms, kind, ids[index])
        day += 1
    for ms, _seq, kind, index in pending:
        if ms >= end_ms:
            return
        if ms >= start_ms:
            yield _event(ms, kind, ids[index])


def _event(ms: int, kind: int, user_id: str) -> UserEvent:
    if kind == ACTIVITY:
        return UserActivity(ms / 1000, user_id, ms // 1000)
    if kind == CONNECT:
        return UserConnect(ms / 1000, user_id)
    return UserDisconnect(ms / 1000, user_id)
