"""The ``habits`` population: one :class:`Persona` (kind and personal habits) per user."""

from __future__ import annotations

import random
from dataclasses import dataclass

from simulation.workloads.base import SimUser, UserKind, shuffled_kinds
from simulation.workloads.draws import log_uniform
from simulation.workloads.habits_params import HABITS_PARAMS, HabitsParams


@dataclass(frozen=True, slots=True)
class Persona:
    """A ``habits`` user and the personal values its behaviour is drawn around.

    Fields that do not apply to the user's kind are 0 (e.g. a browse-only user's
    session length).
    """

    user_id: str
    kind: UserKind
    evening: bool
    """Routine users: starts in the evening rather than the morning."""
    usual_start_s: float
    """Routine users: usual start of the first session, seconds after midnight UTC."""
    sessions_per_day: int
    """Routine users: usual number of sessions on a working day."""
    session_median_s: float
    """Routine and sporadic users: median session length."""
    lunch_break_s: float
    """Routine day users: break between the morning and afternoon sessions."""
    short_break_s: float
    """Routine users: break between other sessions of a day."""
    weekend_work_p: float
    """Routine users: chance to work on each Saturday and Sunday."""
    skip_day_p: float
    """Routine users: chance to skip a weekday."""
    day_p: float
    """Sporadic users: chance of a session on a weekday."""
    lead_s: float
    """Start of the burst of activity before a connect, seconds before it; burst length."""
    burst_gap_s: float
    """Mean gap between activity events of a burst."""
    bursts_per_day: float
    """Mean number of bursts a weekday that lead nowhere."""
    rng_seed: int
    """Seed of this user's own random generator (its day-to-day draws)."""

    @property
    def user(self) -> SimUser:
        return SimUser(self.user_id, self.kind)


def habits_population(
    seed: int, users: int | None = None, params: HabitsParams = HABITS_PARAMS
) -> tuple[Persona, ...]:
    """The users of the ``habits`` workload for ``seed``, kinds shuffled among them."""
    rng = random.Random(seed)
    routine, sporadic, browse = params.kind_counts(users)
    counts = ((UserKind.ROUTINE, routine), (UserKind.SPORADIC, sporadic), (UserKind.BROWSE, browse))
    return tuple(
        _persona(rng, user_id, kind, params) for user_id, kind in shuffled_kinds(rng, counts)
    )


def _persona(rng: random.Random, user_id: str, kind: UserKind, params: HabitsParams) -> Persona:
    # Every value is drawn for every user, in a fixed order, then kept where it applies.
    routine = kind is UserKind.ROUTINE
    sporadic = kind is UserKind.SPORADIC
    evening = rng.random() < params.evening_share
    start_hours = params.evening_start_hours if evening else params.day_start_hours
    usual_start_s = rng.uniform(*start_hours) * 3600.0
    sessions = rng.choices((1, 2, 3), weights=params.sessions_per_day_weights)[0]
    routine_median = log_uniform(rng, *params.routine_session_median_min) * 60.0
    sporadic_median = log_uniform(rng, *params.sporadic_session_median_min) * 60.0
    lunch_s = rng.uniform(*params.lunch_break_min) * 60.0
    short_s = rng.uniform(*params.short_break_min) * 60.0
    weekend_p = rng.uniform(*params.weekend_work_prob)
    skip_p = rng.uniform(*params.skip_day_prob)
    day_p = rng.uniform(*params.sporadic_day_prob)
    lead_s = rng.uniform(*params.lead_s)
    gap_s = rng.uniform(*params.burst_gap_s)
    idle_bursts = rng.uniform(*params.idle_bursts_per_day)
    browse_bursts = rng.uniform(*params.browse_bursts_per_day)
    rng_seed = rng.getrandbits(64)
    median = routine_median if routine else sporadic_median if sporadic else 0.0
    return Persona(
        user_id=user_id,
        kind=kind,
        evening=routine and evening,
        usual_start_s=usual_start_s if routine else 0.0,
        sessions_per_day=sessions if routine else 0,
        session_median_s=median,
        lunch_break_s=lunch_s if routine and not evening else 0.0,
        short_break_s=short_s if routine else 0.0,
        weekend_work_p=weekend_p if routine else 0.0,
        skip_day_p=skip_p if routine else 0.0,
        day_p=day_p if sporadic else 0.0,
        lead_s=lead_s,
        burst_gap_s=gap_s,
        bursts_per_day=browse_bursts if kind is UserKind.BROWSE else idle_bursts,
        rng_seed=rng_seed,
    )
