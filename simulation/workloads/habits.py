"""The ``habits`` workload: a population whose personal habits reward per-user learning.

Every value below is a field of :class:`~simulation.workloads.habits_params.HabitsParams`
(defaults in brackets); personal values are drawn once per user
(:func:`~simulation.workloads.personas.habits_population`) and kept for the whole run.

**Population** [1000 users]: ``routine`` [55 %], ``sporadic`` [15 %] and ``browse`` (the
rest), shuffled; ids are UUID4 strings drawn from the seed.

**Routine users** work Monday to Friday (UTC days); each skips a weekday with a personal
chance [2-10 %] and works each weekend day with a personal chance [0-15 %]. A personal
usual start [07:00-11:00 UTC; evening users, 15 % of them, 18:00-23:00] moves from day to
day by a normal jitter [sd 1000 s, clipped at 3 sd]. A working day has the personal
usual number of sessions [1, 2 or 3 with weights .3/.45/.25], or on some days [20 %] a
random 1-3. Session lengths are lognormal [sigma 0.4, clipped to 5 min-6 h] around a
personal median [25-180 min, log-uniform]. Day users take a personal lunch break
[30-75 min] between the morning and afternoon sessions (after the first of two, the
second of three); other breaks are personal short ones [10-40 min]; breaks vary by
[20 %] a day. No session of a day starts more than [16 h] after its first one.

**Sporadic users** have one session on a weekday with a personal chance [10-50 %]
([half] that on weekends), at a time drawn from the day profile, of lognormal length
around a shorter personal median [10-50 min].

**Browse-only users** never connect.

**Activity.** Every connect is preceded by a burst: activity events starting a personal
lead [1-5 min, +-20 % per burst] before the connect, with exponential gaps around a
personal mean [10-20 s], at least [3] events, all before the connect. Routine and
sporadic users also have bursts that lead nowhere [a personal 1-2 a weekday], browse-only
users more of them [a personal 3-8 a weekday], at times drawn from the day profile and of
personal length (the lead). Everyone has sparse background activity [0.3 an hour at the
busiest hour]. The day profile [24 hourly weights, low at night, high 09:00-17:00 UTC]
shapes bursts, background activity and sporadic sessions; weekends have [half] the bursts
and background. Connected users show light activity [4 an hour].

**Guarantees.** Sessions of one user never overlap and are at least [5 min] apart (a
session that would start earlier is pushed back); connect and disconnect alternate per
user. Events are those of ``[start, start + hours h)``: a session open at the end keeps
no disconnect, and one that began before ``start`` is left out. Times are whole
milliseconds; an activity's ``timestamp`` is its time in whole seconds. Events come
sorted by ``ts`` (ties in generation order), lazily: days are planned one ahead of what
is emitted, so memory stays bounded on long runs. Each user draws its days from its own
``random.Random``, so a run is a pure function of the seed and the parameters, and a
shorter window is a prefix of a longer one from the same start.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator

from features.events import UserEvent
from simulation.workloads.base import DAY_S, DEFAULT_START, UserKind, check_window
from simulation.workloads.draws import clipped_gauss, poisson
from simulation.workloads.habits_params import HABITS_PARAMS, HabitsParams
from simulation.workloads.personas import Persona, habits_population
from simulation.workloads.planner import DayPlanner, emit, weekday


def habits_workload(
    *,
    hours: float,
    seed: int,
    start: float = DEFAULT_START,
    users: int | None = None,
    params: HabitsParams = HABITS_PARAMS,
) -> Iterator[UserEvent]:
    """The events of the window ``[start, start + hours h)``, lazily, sorted by ``ts``.

    ``hours`` may be ``math.inf`` (a realtime run that ends when stopped).
    """
    end = check_window(hours, start)
    personas = habits_population(seed, users, params)
    return emit(_HabitsPlanner(personas, params, start), start, end)


class _HabitsPlanner(DayPlanner):
    """Plans one UTC day at a time for every persona."""

    def __init__(self, personas: tuple[Persona, ...], params: HabitsParams, start: float) -> None:
        super().__init__(personas, params, start)
        self.personas = personas
        self.params = params

    def plan_day(self, day: int) -> None:
        midnight = float(day * DAY_S)
        weekend = weekday(day) >= 5
        for index, persona in enumerate(self.personas):
            rng = self.rngs[index]
            if persona.kind is UserKind.ROUTINE:
                self._routine_day(rng, index, persona, midnight, weekend)
            elif persona.kind is UserKind.SPORADIC:
                self._sporadic_day(rng, index, persona, midnight, weekend)
            self._idle_bursts(rng, index, persona, midnight, weekend)
            self.background(rng, index, midnight, weekend)

    def _routine_day(
        self, rng: random.Random, index: int, persona: Persona, midnight: float, weekend: bool
    ) -> None:
        p = self.params
        works = rng.random() < (persona.weekend_work_p if weekend else 1 - persona.skip_day_p)
        jitter = clipped_gauss(rng, p.start_jitter_s, 3 * p.start_jitter_s)
        count = persona.sessions_per_day
        if rng.random() < p.session_count_change:
            count = rng.randint(1, 3)
        if not works:
            return
        first = midnight + persona.usual_start_s + jitter
        latest = first + p.workday_span_h * 3600
        lunch_after = (count + 1) // 2 - 1 if persona.lunch_break_s > 0 and count >= 2 else -1
        at = first
        for k in range(count):
            connect = max(at, self.free_at(index))
            if connect >= latest:
                return
            disconnect = self._session(rng, index, persona, connect)
            usual = persona.lunch_break_s if k == lunch_after else persona.short_break_s
            at = disconnect + usual * (1 + clipped_gauss(rng, p.break_jitter, 3 * p.break_jitter))

    def _sporadic_day(
        self, rng: random.Random, index: int, persona: Persona, midnight: float, weekend: bool
    ) -> None:
        chance = persona.day_p * (self.params.sporadic_weekend_factor if weekend else 1.0)
        if rng.random() < chance:
            at = midnight + self.profile.time_of_day(rng)
            self._session(rng, index, persona, max(at, self.free_at(index)))

    def _session(self, rng: random.Random, index: int, persona: Persona, connect: float) -> float:
        """Plans a burst, a session from ``connect`` and light activity in it; its end, s."""
        p = self.params
        length = rng.lognormvariate(math.log(persona.session_median_s), p.session_sigma)
        length = min(max(length, p.session_bounds_s[0]), p.session_bounds_s[1])
        connect_ms = math.ceil(connect * 1000)
        self._burst(rng, index, persona, connect_ms)
        return self.session(rng, index, connect_ms, length)

    def _burst(self, rng: random.Random, index: int, persona: Persona, end_ms: int) -> None:
        """Activity from a personal lead before ``end_ms`` up to (not at) ``end_ms``."""
        p = self.params
        lead = min(max(persona.lead_s * rng.uniform(0.8, 1.2), p.lead_s[0]), p.lead_s[1])
        self.burst(
            rng, index, end_ms, lead, gap_s=persona.burst_gap_s, min_events=p.burst_min_events
        )

    def _idle_bursts(
        self, rng: random.Random, index: int, persona: Persona, midnight: float, weekend: bool
    ) -> None:
        mean = persona.bursts_per_day * (self.params.weekend_factor if weekend else 1.0)
        for _ in range(poisson(rng, mean)):
            end = midnight + self.profile.time_of_day(rng) + persona.lead_s
            self._burst(rng, index, persona, math.floor(end * 1000))
