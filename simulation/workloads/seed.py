"""The ``seed`` workload: the original Go user simulator, replayed in virtual time.

Population (:func:`seed_population`): 50 users with UUID4 ids, 3 ``fast``, 17 ``slow``
and 30 ``browse`` (browse-only users never connect). Two kinds of process run from
``start``:

- **Activity.** Wait a uniform 300-1299 ms (whole ms), publish ``user:activity`` for a
  user drawn uniformly among all users (connected or not), repeat. Each activity sets
  that user's last-activity time.
- **One loop per fast/slow user.** Wait until the user has had activity in the last
  30 s (checked at once, then every 5 s); wait 5-34 s (fast) or 15-74 s (slow); connect;
  stay 60-179 s (fast) or 180-599 s (slow); disconnect; rest 60-239 s; loop. Every
  duration is whole seconds, drawn uniformly with both ends included.

"In the last 30 s" means strictly less than 30 s ago (Go's ``time.Since(t) < 30*time.Second``).
Processes due at the same instant run in a fixed order: the activity process first (so a
check sees an activity published at that very instant), then the users in population
order. All processes share one ``random.Random(seed)``, drawn in that order, so a run is
a pure function of the seed, and a shorter window is a prefix of a longer one. Every time
is whole milliseconds after ``start``; events at or after ``start + hours`` are not
generated (a session open at the end keeps no disconnect).
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from features.events import UserActivity, UserConnect, UserDisconnect, UserEvent
from simulation.workloads.base import (
    DEFAULT_START,
    SimUser,
    UserKind,
    check_window,
    new_user_id,
)

Range = tuple[int, int]
"""Inclusive bounds of a uniform draw."""


@dataclass(frozen=True, slots=True)
class SeedParams:
    """The Go simulator's constants. Durations are whole units, drawn uniformly, inclusive."""

    users: int = 50
    """Population size."""
    fast_users: int = 3
    """Users of kind ``fast`` (among ``users``; scaled in proportion for other sizes)."""
    slow_users: int = 17
    """Users of kind ``slow``; the rest are browse-only."""
    activity_delay_ms: Range = (300, 1299)
    """Delay before each activity event, milliseconds."""
    recent_activity_s: int = 30
    """A user is ready to connect once its last activity is less than this old."""
    check_interval_s: int = 5
    """How often a waiting user checks for recent activity."""
    fast_wait_s: Range = (5, 34)
    """Fast users: wait between seeing recent activity and connecting."""
    slow_wait_s: Range = (15, 74)
    """Slow users: wait between seeing recent activity and connecting."""
    fast_session_s: Range = (60, 179)
    """Fast users: how long they stay connected."""
    slow_session_s: Range = (180, 599)
    """Slow users: how long they stay connected."""
    rest_s: Range = (60, 239)
    """Both: wait after a disconnect before checking for activity again."""

    def kind_counts(self, users: int | None = None) -> tuple[int, int, int]:
        """``(fast, slow, browse)`` for a population of ``users`` (default ``self.users``).

        Other sizes keep the 3:17:30 proportions (rounded); the activity process is the
        same, so per-user activity gets sparser as the population grows.
        """
        n = self.users if users is None else users
        if n < 1:
            raise ValueError(f"users must be >= 1, not {n}")
        if n == self.users:
            return self.fast_users, self.slow_users, n - self.fast_users - self.slow_users
        fast = round(n * self.fast_users / self.users)
        slow = min(n - fast, round(n * self.slow_users / self.users))
        return fast, slow, n - fast - slow


SEED_PARAMS: Final = SeedParams()

_CHECK, _CONNECT, _DISCONNECT = 0, 1, 2


def seed_population(
    seed: int, users: int | None = None, params: SeedParams = SEED_PARAMS
) -> tuple[SimUser, ...]:
    """The users of :func:`seed_workload` for ``seed``: fast ones first, then slow, then browse."""
    return _population(random.Random(seed), users, params)


def seed_workload(
    *,
    hours: float,
    seed: int,
    start: float = DEFAULT_START,
    users: int | None = None,
    params: SeedParams = SEED_PARAMS,
) -> Iterator[UserEvent]:
    """The events of the window ``[start, start + hours h)``, lazily, sorted by ``ts``.

    ``hours`` may be ``math.inf`` (a realtime run that ends when stopped).
    """
    end = check_window(hours, start)
    rng = random.Random(seed)
    population = _population(rng, users, params)
    return _run(rng, population, params, start, end)


def _population(rng: random.Random, users: int | None, params: SeedParams) -> tuple[SimUser, ...]:
    fast, slow, browse = params.kind_counts(users)
    kinds = [UserKind.FAST] * fast + [UserKind.SLOW] * slow + [UserKind.BROWSE] * browse
    return tuple(SimUser(new_user_id(rng), kind) for kind in kinds)


def _run(
    rng: random.Random,
    population: tuple[SimUser, ...],
    params: SeedParams,
    start: float,
    end: float,
) -> Iterator[UserEvent]:
    start_ms = round(start * 1000)
    end_ms = math.inf if math.isinf(end) else (end - start) * 1000
    ids = [user.user_id for user in population]
    n = len(ids)
    never = -math.inf
    last_activity: list[float] = [never] * n
    randint = rng.randint
    recent_ms = params.recent_activity_s * 1000
    check_ms = params.check_interval_s * 1000
    waits: dict[int, Range] = {}
    sessions: dict[int, Range] = {}
    # Heap of user steps: (due ms, user index, step). Every user loop starts with a check.
    steps: list[tuple[int, int, int]] = []
    for index, user in enumerate(population):
        if user.kind is UserKind.FAST:
            waits[index], sessions[index] = params.fast_wait_s, params.fast_session_s
        elif user.kind is UserKind.SLOW:
            waits[index], sessions[index] = params.slow_wait_s, params.slow_session_s
        else:
            continue
        steps.append((0, index, _CHECK))
    heapq.heapify(steps)
    low, high = params.activity_delay_ms
    next_activity = randint(low, high)
    while True:
        if not steps or next_activity <= steps[0][0]:
            now = next_activity
            if now >= end_ms:
                return
            index = rng.randrange(n)
            last_activity[index] = now
            stamp = start_ms + now
            yield UserActivity(stamp / 1000, ids[index], stamp // 1000)
            next_activity = now + randint(low, high)
            continue
        now, index, step = steps[0]
        if now >= end_ms:
            return
        if step == _CHECK:
            if now - last_activity[index] < recent_ms:
                heapq.heapreplace(steps, (now + 1000 * randint(*waits[index]), index, _CONNECT))
            else:
                heapq.heapreplace(steps, (now + check_ms, index, _CHECK))
        elif step == _CONNECT:
            heapq.heapreplace(steps, (now + 1000 * randint(*sessions[index]), index, _DISCONNECT))
            yield UserConnect((start_ms + now) / 1000, ids[index])
        else:
            heapq.heapreplace(steps, (now + 1000 * randint(*params.rest_s), index, _CHECK))
            yield UserDisconnect((start_ms + now) / 1000, ids[index])
