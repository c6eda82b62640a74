"""The ``shifts`` workload: long sessions, breaks and weekly habits, unlike ``seed`` and ``habits``.

Built to test the service on conditions it was not tuned on: nodes held for hours, users who
come back after a break or only twice a week, and many users whose activity rarely leads
to a connect. Every value below is a field of
:class:`~simulation.workloads.shifts_params.ShiftsParams` (defaults in brackets).

**Population** [300 users]: ``shift`` [25 %], ``impulse`` [20 %], ``weekly`` [10 %] and
``casual`` (the rest), shuffled; ids are UUID4 strings drawn from the seed.

**Shift workers** work Monday to Friday (UTC days), each skipping a weekday with a personal
chance [2-10 %]. Each has one shift [starting at 06, 14 or 22 h UTC], started with a daily
jitter [sd 10 min, clipped at 3 sd]. A shift is [2-6 h] of connected time, drawn each day
and split in two sessions by a break [30-60 min] at [35-65 %] of it; a 22 h shift runs
past midnight. Before each session come a few activity events [2-5], at uniform times
from a personal [2-5 min] to [1 min] before the connect.

**Impulsive users** have short bursts of activity [a personal 1.5-4 a day, every day, at
hours drawn from the evening-heavy day profile], each [1-5 min] long, that end in a
connect [60 %] of the time; such a session is lognormal [median 25 min, sigma 0.4,
clipped to 5 min-2 h].

**Weekly users** connect only on Mondays and Thursdays, once, at a personal usual time
[08-20 h UTC, jittered like a shift], for [1-2 h], unannounced: no activity comes before.

**Casual users** browse in bursts [a personal 3-8 a weekday, half on weekends] that end in
a connect only [3 %] of the time (sessions as for impulsive users).

Everyone has sparse background activity [0.3 an hour at the busiest hour, half on
weekends]; connected users show light activity [4 an hour]. Bursts have exponential gaps
around a personal mean [10-20 s] and at least [3] events.

**Guarantees.** As for ``habits``: a user's sessions never overlap and are at least [5 min]
apart (a shift's or weekly session is pushed back; a burst's session that would come too
early is dropped), connect and disconnect alternate per user, a session open at the end
keeps no disconnect and one begun before ``start`` is left out, times are whole
milliseconds, events come sorted and lazily (:mod:`simulation.workloads.planner`), each
user draws from its own ``random.Random``, and a shorter window is a prefix of a longer
one from the same start.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

from features.events import UserEvent
from simulation.workloads.base import (
    DAY_S,
    DEFAULT_START,
    SimUser,
    UserKind,
    check_window,
    shuffled_kinds,
)
from simulation.workloads.draws import clipped_gauss, poisson
from simulation.workloads.planner import ACTIVITY, DayPlanner, emit, weekday
from simulation.workloads.shifts_params import SHIFTS_PARAMS, ShiftsParams

SESSION_BOUNDS_S = (300.0, 7200.0)
"""A burst's session is clipped to this range, seconds."""


@dataclass(frozen=True, slots=True)
class ShiftsPersona:
    """A ``shifts`` user and its personal values (0 where they do not apply to its kind)."""

    user_id: str
    kind: UserKind
    usual_start_s: float
    """Shift workers: the shift's start; weekly users: the session's usual start (seconds
    after midnight UTC)."""
    skip_day_p: float
    """Shift workers: chance to skip a weekday."""
    lead_s: float
    """Shift workers: the activity before a session starts this long before it."""
    burst_gap_s: float
    """Mean gap between the activity events of a burst."""
    bursts_per_day: float
    """Impulsive and casual users: mean number of bursts a day (a weekday for casual users)."""
    rng_seed: int
    """Seed of this user's own random generator (its day-to-day draws)."""

    @property
    def user(self) -> SimUser:
        return SimUser(self.user_id, self.kind)


def shifts_population(
    seed: int, users: int | None = None, params: ShiftsParams = SHIFTS_PARAMS
) -> tuple[ShiftsPersona, ...]:
    """The users of the ``shifts`` workload for ``seed``, kinds shuffled among them."""
    rng = random.Random(seed)
    shift, impulse, weekly, casual = params.kind_counts(users)
    counts = (
        (UserKind.SHIFT, shift),
        (UserKind.IMPULSE, impulse),
        (UserKind.WEEKLY, weekly),
        (UserKind.CASUAL, casual),
    )
    return tuple(
        _persona(rng, user_id, kind, params) for user_id, kind in shuffled_kinds(rng, counts)
    )


def _persona(
    rng: random.Random, user_id: str, kind: UserKind, params: ShiftsParams
) -> ShiftsPersona:
    # Every value is drawn for every user, in a fixed order, then kept where it applies.
    shift_start_s = rng.choice(params.shift_starts_h) * 3600.0
    weekly_start_s = rng.uniform(*params.weekly_start_hours) * 3600.0
    skip_p = rng.uniform(*params.skip_day_prob)
    lead_s = rng.uniform(*params.lead_s)
    gap_s = rng.uniform(*params.burst_gap_s)
    impulse_bursts = rng.uniform(*params.impulse_bursts_per_day)
    casual_bursts = rng.uniform(*params.casual_bursts_per_day)
    rng_seed = rng.getrandbits(64)
    usual = {UserKind.SHIFT: shift_start_s, UserKind.WEEKLY: weekly_start_s}.get(kind, 0.0)
    bursts = {UserKind.IMPULSE: impulse_bursts, UserKind.CASUAL: casual_bursts}.get(kind, 0.0)
    return ShiftsPersona(
        user_id=user_id,
        kind=kind,
        usual_start_s=usual,
        skip_day_p=skip_p if kind is UserKind.SHIFT else 0.0,
        lead_s=lead_s if kind is UserKind.SHIFT else 0.0,
        burst_gap_s=gap_s,
        bursts_per_day=bursts,
        rng_seed=rng_seed,
    )


def shifts_users(seed: int, users: int | None = None) -> tuple[SimUser, ...]:
    """Who :func:`shifts_workload` simulates (id and kind)."""
    return tuple(persona.user for persona in shifts_population(seed, users))


def shifts_workload(
    *,
    hours: float,
    seed: int,
    start: float = DEFAULT_START,
    users: int | None = None,
    params: ShiftsParams = SHIFTS_PARAMS,
) -> Iterator[UserEvent]:
    """The events of the window ``[start, start + hours h)``, lazily, sorted by ``ts``.

    ``hours`` may be ``math.inf`` (a realtime run that ends when stopped).
    """
    end = check_window(hours, start)
    personas = shifts_population(seed, users, params)
    return emit(_ShiftsPlanner(personas, params, start), start, end)


class _ShiftsPlanner(DayPlanner):
    def __init__(
        self, personas: tuple[ShiftsPersona, ...], params: ShiftsParams, start: float
    ) -> None:
        super().__init__(personas, params, start)
        self.personas = personas
        self.params = params

    def plan_day(self, day: int) -> None:
        midnight = float(day * DAY_S)
        dow = weekday(day)
        weekend = dow >= 5
        for index, persona in enumerate(self.personas):
            rng = self.rngs[index]
            if persona.kind is UserKind.SHIFT:
                self._shift(rng, index, persona, midnight, weekend)
            elif persona.kind is UserKind.WEEKLY:
                self._weekly(rng, index, persona, midnight, dow)
            elif persona.kind is UserKind.IMPULSE:
                self._bursts(rng, index, persona, midnight, 1.0, self.params.impulse_connect_prob)
            else:
                factor = self.params.weekend_factor if weekend else 1.0
                self._bursts(rng, index, persona, midnight, factor, self.params.casual_connect_prob)
            self.background(rng, index, midnight, weekend)

    def _shift(
        self, rng: random.Random, index: int, persona: ShiftsPersona, midnight: float, weekend: bool
    ) -> None:
        p = self.params
        works = rng.random() >= persona.skip_day_p
        jitter = clipped_gauss(rng, p.start_jitter_s, 3 * p.start_jitter_s)
        work_s = rng.uniform(*p.shift_work_h) * 3600.0
        first_s = work_s * rng.uniform(*p.shift_split)
        break_s = rng.uniform(*p.break_min) * 60.0
        if weekend or not works:
            return
        end = self._scheduled(
            rng, index, persona, midnight + persona.usual_start_s + jitter, first_s
        )
        self._scheduled(rng, index, persona, end + break_s, work_s - first_s)

    def _weekly(
        self, rng: random.Random, index: int, persona: ShiftsPersona, midnight: float, dow: int
    ) -> None:
        p = self.params
        jitter = clipped_gauss(rng, p.start_jitter_s, 3 * p.start_jitter_s)
        length_s = rng.uniform(*p.weekly_session_h) * 3600.0
        if dow in p.weekly_days:
            at = midnight + persona.usual_start_s + jitter
            self.session(rng, index, math.ceil(max(at, self.free_at(index)) * 1000), length_s)

    def _scheduled(
        self, rng: random.Random, index: int, persona: ShiftsPersona, at: float, length_s: float
    ) -> float:
        """A session at ``at`` (or once the user is free) after a few activity events."""
        low, high = self.params.lead_events
        connect_ms = math.ceil(max(at, self.free_at(index)) * 1000)
        first_ms = connect_ms - round(persona.lead_s * 1000)
        last_ms = connect_ms - round(self.params.lead_gap_s * 1000)
        for _ in range(rng.randint(low, high)):
            self.add(rng.randrange(first_ms, last_ms), ACTIVITY, index)
        return self.session(rng, index, connect_ms, length_s)

    def _bursts(
        self,
        rng: random.Random,
        index: int,
        persona: ShiftsPersona,
        midnight: float,
        factor: float,
        connect_prob: float,
    ) -> None:
        """A day's bursts, each ending in a connect with ``connect_prob`` (when free)."""
        p = self.params
        ends = sorted(
            midnight + self.profile.time_of_day(rng)
            for _ in range(poisson(rng, persona.bursts_per_day * factor))
        )
        for end in ends:
            length_s = rng.uniform(*p.burst_length_s)
            connects = rng.random() < connect_prob
            session_s = rng.lognormvariate(math.log(p.session_median_min * 60), p.session_sigma)
            end_ms = math.floor(end * 1000)
            self.burst(
                rng,
                index,
                end_ms,
                length_s,
                gap_s=persona.burst_gap_s,
                min_events=p.burst_min_events,
            )
            if connects and end >= self.free_at(index):
                length = min(max(session_s, SESSION_BOUNDS_S[0]), SESSION_BOUNDS_S[1])
                self.session(rng, index, end_ms, length)
