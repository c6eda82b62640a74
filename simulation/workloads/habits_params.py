"""Every knob of the ``habits`` workload, with its meaning (see :mod:`simulation.workloads.habits`).

Pairs ``(low, high)`` are the range a personal value is drawn from, uniformly unless the
field says otherwise; each user keeps its draw for the whole run.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Final

from simulation.workloads.draws import DayProfile

Bounds = tuple[float, float]

DEFAULT_HOURLY_PROFILE: Final = (
    0.10, 0.07, 0.05, 0.05, 0.06, 0.10, 0.25, 0.50, 0.80, 0.95, 1.00, 1.00,
    0.85, 0.90, 1.00, 1.00, 0.95, 0.85, 0.75, 0.70, 0.65, 0.55, 0.40, 0.20,
)  # fmt: skip
"""Relative activity for each UTC hour 0-23: low at night, peak in the working day."""


@dataclass(frozen=True, slots=True)
class HabitsParams:
    """The population and behaviour of the ``habits`` workload."""

    users: int = 1000
    """Population size (``--users`` overrides it)."""
    routine_share: float = 0.55
    """Share of users with a weekday routine (rounded to a whole count)."""
    sporadic_share: float = 0.15
    """Share of users who connect on some days at no fixed time; the rest only browse."""

    # Routine users.
    evening_share: float = 0.15
    """Share of routine users who start in the evening instead of the morning."""
    day_start_hours: Bounds = (7.0, 11.0)
    """Usual start of a day user's first session, UTC hours."""
    evening_start_hours: Bounds = (18.0, 23.0)
    """Usual start of an evening user's first session, UTC hours."""
    start_jitter_s: float = 1000.0
    """Day-to-day deviation of the start from the usual one (normal, clipped at 3 sd)."""
    sessions_per_day_weights: tuple[float, float, float] = (0.3, 0.45, 0.25)
    """How likely a user's usual number of sessions a day is 1, 2 or 3."""
    workday_span_h: float = 16.0
    """No session of a routine day starts later than this after the day's first start
    (remaining sessions of an overlong day are dropped)."""
    session_count_change: float = 0.2
    """Chance that a working day has a random number of sessions (1-3) instead of the usual."""
    routine_session_median_min: Bounds = (25.0, 180.0)
    """Personal median session length of a routine user, minutes (log-uniform)."""
    session_sigma: float = 0.4
    """Spread of session lengths around the personal median (lognormal sigma)."""
    session_bounds_s: Bounds = (300.0, 21600.0)
    """Every session length is clipped to this range, seconds."""
    lunch_break_min: Bounds = (30.0, 75.0)
    """Personal lunch break of a day user between morning and afternoon, minutes: after the
    first of two sessions, the second of three."""
    short_break_min: Bounds = (10.0, 40.0)
    """Personal break between other sessions of a day, minutes."""
    break_jitter: float = 0.2
    """Day-to-day relative deviation of a break (normal, clipped at 3 sd)."""
    weekend_work_prob: Bounds = (0.0, 0.15)
    """Personal chance to also work each Saturday and Sunday."""
    skip_day_prob: Bounds = (0.02, 0.10)
    """Personal chance to skip a weekday."""

    # Sporadic users.
    sporadic_day_prob: Bounds = (0.1, 0.5)
    """Personal chance of one session on a weekday, at an hour drawn from the day profile."""
    sporadic_weekend_factor: float = 0.5
    """Sporadic users' chance of a session on Saturday or Sunday, relative to a weekday."""
    sporadic_session_median_min: Bounds = (10.0, 50.0)
    """Personal median session length of a sporadic user, minutes (log-uniform)."""

    # Activity.
    lead_s: Bounds = (60.0, 300.0)
    """Personal time before a connect at which its burst of activity starts; also the length
    of a user's bursts that lead nowhere. Each burst varies it by +-20 % within this range."""
    burst_gap_s: Bounds = (10.0, 20.0)
    """Personal mean gap between activity events of a burst (exponential gaps)."""
    burst_min_events: int = 3
    """Every burst has at least this many activity events."""
    idle_bursts_per_day: Bounds = (1.0, 2.0)
    """Routine and sporadic users: personal mean number of bursts a weekday that lead nowhere."""
    browse_bursts_per_day: Bounds = (3.0, 8.0)
    """Browse-only users: personal mean number of bursts a weekday."""
    background_per_hour: float = 0.3
    """Everyone: sparse single activity events an hour at the busiest hour of a weekday."""
    session_activity_per_hour: float = 4.0
    """Light activity while connected, events an hour (Poisson)."""
    hourly_profile: tuple[float, ...] = DEFAULT_HOURLY_PROFILE
    """Day/night cycle: relative weight of each UTC hour for bursts, background activity and
    sporadic sessions."""
    weekend_factor: float = 0.5
    """Bursts and background activity on Saturday and Sunday, relative to a weekday."""
    min_session_gap_s: float = 300.0
    """Sessions of one user are at least this far apart (a later one is pushed back)."""

    def __post_init__(self) -> None:
        if self.users < 1:
            raise ValueError(f"users must be >= 1, not {self.users}")
        shares = (self.routine_share, self.sporadic_share, self.evening_share)
        if any(not 0 <= s <= 1 for s in shares) or self.routine_share + self.sporadic_share > 1:
            raise ValueError("shares must be within [0, 1] and routine + sporadic <= 1")
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple) and len(value) == 2 and not 0 <= value[0] <= value[1]:
                raise ValueError(f"{f.name}: need 0 <= low <= high, not {value}")
        for name in ("weekend_work_prob", "skip_day_prob", "sporadic_day_prob"):
            if getattr(self, name)[1] > 1:
                raise ValueError(f"{name}: probabilities must be within [0, 1]")
        for name in ("day_start_hours", "evening_start_hours"):
            if getattr(self, name)[1] >= 24:
                raise ValueError(f"{name}: hours must be within [0, 24)")
        if self.start_jitter_s * 3 > 3 * 3600 or self.lead_s[1] > 3600:
            raise ValueError("start_jitter_s must be <= 1 h and lead_s at most 1 h")
        if self.lead_s[0] <= 0 or self.burst_gap_s[0] <= 0 or self.session_bounds_s[0] <= 0:
            raise ValueError("lead_s, burst_gap_s and session_bounds_s must be > 0")
        if self.routine_session_median_min[0] <= 0 or self.sporadic_session_median_min[0] <= 0:
            raise ValueError("median session lengths must be > 0")
        if self.burst_min_events < 1 or self.min_session_gap_s < 0:
            raise ValueError("burst_min_events must be >= 1 and min_session_gap_s >= 0")
        DayProfile(self.hourly_profile)  # raises ValueError unless 24 usable weights

    def kind_counts(self, users: int | None = None) -> tuple[int, int, int]:
        """``(routine, sporadic, browse)`` for ``users`` users (default ``self.users``)."""
        n = self.users if users is None else users
        if n < 1:
            raise ValueError(f"users must be >= 1, not {n}")
        routine = round(n * self.routine_share)
        sporadic = min(n - routine, round(n * self.sporadic_share))
        return routine, sporadic, n - routine - sporadic


HABITS_PARAMS: Final = HabitsParams()
