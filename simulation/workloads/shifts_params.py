"""Every knob of the ``shifts`` workload, with its meaning (see :mod:`simulation.workloads.shifts`).

Pairs ``(low, high)`` are the range a value is drawn from, uniformly; a *personal* value is
drawn once per user and kept for the whole run, the others are drawn afresh each time.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Final

from simulation.workloads.draws import DayProfile

Bounds = tuple[float, float]
"""``(low, high)``: a value is drawn uniformly between them."""
Counts = tuple[int, int]
"""``(low, high)``: a whole count is drawn between them, both included."""

EVENING_HOURLY_PROFILE: Final = (
    0.15, 0.08, 0.05, 0.04, 0.04, 0.06, 0.15, 0.30, 0.45, 0.50, 0.50, 0.50,
    0.55, 0.50, 0.50, 0.55, 0.60, 0.75, 0.95, 1.00, 1.00, 0.90, 0.60, 0.30,
)  # fmt: skip
"""Relative weight of each UTC hour 0-23 for bursts and background activity: some by day,
most in the evening, little at night."""


@dataclass(frozen=True, slots=True)
class ShiftsParams:
    """The population and behaviour of the ``shifts`` workload."""

    users: int = 300
    """Population size (``--users`` overrides it)."""
    shift_share: float = 0.25
    """Share of users who work weekday shifts (rounded to a whole count)."""
    impulse_share: float = 0.20
    """Share of users whose bursts of activity often end in a short session."""
    weekly_share: float = 0.10
    """Share of users who connect only on ``weekly_days``; the rest browse (``casual``)."""

    # Shift workers.
    shift_starts_h: tuple[float, ...] = (6.0, 14.0, 22.0)
    """The shifts, UTC start hours: each shift worker has one, drawn uniformly."""
    start_jitter_s: float = 600.0
    """Day-to-day deviation of a shift's start (normal, clipped at 3 sd)."""
    skip_day_prob: Bounds = (0.02, 0.10)
    """Personal chance to skip a weekday."""
    shift_work_h: Bounds = (2.0, 6.0)
    """Connected time of a shift, hours, drawn each day; a break splits it in two sessions."""
    shift_split: Bounds = (0.35, 0.65)
    """Where the break falls, as a share of the shift's connected time."""
    break_min: Bounds = (30.0, 60.0)
    """The break between a shift's two sessions, minutes, drawn each day."""
    lead_events: Counts = (2, 5)
    """Activity events in the minutes before each session of a shift worker (inclusive
    range, drawn each time), at uniform times from ``lead_s`` to ``lead_gap_s`` before it."""
    lead_s: Bounds = (120.0, 300.0)
    """Personal time before a shift worker's connect at which its activity events start."""
    lead_gap_s: float = 60.0
    """The last activity event before a shift worker's connect comes at least this early."""

    # Impulsive users.
    impulse_bursts_per_day: Bounds = (1.5, 4.0)
    """Personal mean number of bursts a day (Poisson; every day of the week)."""
    impulse_connect_prob: float = 0.6
    """Chance that a burst of an impulsive user ends in a connect."""

    # Weekly users.
    weekly_days: tuple[int, ...] = (0, 3)
    """Weekdays (Monday 0) on which weekly users connect: Monday and Thursday."""
    weekly_start_hours: Bounds = (8.0, 20.0)
    """Personal usual start of a weekly session, UTC hours (jittered like a shift)."""
    weekly_session_h: Bounds = (1.0, 2.0)
    """Length of a weekly session, hours, drawn each time. A weekly user connects without
    activity before: nothing announces the connect."""

    # Casual users.
    casual_bursts_per_day: Bounds = (3.0, 8.0)
    """Personal mean number of bursts a weekday (half on weekends)."""
    casual_connect_prob: float = 0.03
    """Chance that a burst of a casual user ends in a connect."""

    # Activity and sessions shared by every kind.
    session_median_min: float = 25.0
    """Median length of a session that ends a burst (lognormal)."""
    session_sigma: float = 0.4
    """Spread of those session lengths (lognormal sigma); clipped to 5 min-2 h."""
    burst_length_s: Bounds = (60.0, 300.0)
    """Length of a burst of activity, drawn each time; a connect that ends one is at its end."""
    burst_gap_s: Bounds = (10.0, 20.0)
    """Personal mean gap between the activity events of a burst (exponential gaps)."""
    burst_min_events: int = 3
    """Every burst has at least this many activity events."""
    hourly_profile: tuple[float, ...] = EVENING_HOURLY_PROFILE
    """When bursts and background activity happen: relative weight of each UTC hour."""
    weekend_factor: float = 0.5
    """Casual users' bursts and everyone's background activity on Saturday and Sunday,
    relative to a weekday."""
    background_per_hour: float = 0.3
    """Everyone but weekly users: sparse single activity events an hour at the busiest hour
    of a weekday."""
    session_activity_per_hour: float = 4.0
    """Light activity while connected, events an hour (Poisson)."""
    min_session_gap_s: float = 300.0
    """Sessions of one user are at least this far apart (a later one is pushed back or,
    for a burst's session, dropped)."""

    def __post_init__(self) -> None:
        if self.users < 1:
            raise ValueError(f"users must be >= 1, not {self.users}")
        shares = (self.shift_share, self.impulse_share, self.weekly_share)
        if any(not 0 <= s <= 1 for s in shares) or sum(shares) > 1:
            raise ValueError("shares must be within [0, 1] and add up to at most 1")
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type in ("Bounds", "Counts") and not 0 <= value[0] <= value[1]:
                raise ValueError(f"{f.name}: need 0 <= low <= high, not {value}")
        if not self.shift_starts_h or any(not 0 <= h < 24 for h in self.shift_starts_h):
            raise ValueError("shift_starts_h: at least one hour, each within [0, 24)")
        if not self.weekly_days or any(d not in range(7) for d in self.weekly_days):
            raise ValueError("weekly_days: at least one weekday, each 0 (Monday) to 6")
        if self.weekly_start_hours[1] >= 24 or self.shift_split[1] >= 1:
            raise ValueError("weekly_start_hours must be within [0, 24), shift_split in [0, 1)")
        for name in ("impulse_connect_prob", "casual_connect_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be within [0, 1]")
        if self.start_jitter_s > 3600 or self.lead_s[1] > 3600 or self.burst_length_s[1] > 3600:
            raise ValueError("start_jitter_s, lead_s and burst_length_s must be at most 1 h")
        if min(self.lead_s[0], self.burst_length_s[0], self.burst_gap_s[0]) <= 0:
            raise ValueError("lead_s, burst_length_s and burst_gap_s must be > 0")
        if not 0 < self.lead_gap_s < self.lead_s[0]:
            raise ValueError("lead_gap_s must be > 0 and below lead_s")
        if self.shift_work_h[0] <= 0 or self.weekly_session_h[0] <= 0:
            raise ValueError("shift_work_h and weekly_session_h must be > 0")
        if self.session_median_min <= 0 or self.lead_events[0] < 1:
            raise ValueError("session_median_min must be > 0 and lead_events at least 1")
        if self.burst_min_events < 1 or self.min_session_gap_s < 0:
            raise ValueError("burst_min_events must be >= 1 and min_session_gap_s >= 0")
        DayProfile(self.hourly_profile)  # raises ValueError unless 24 usable weights

    def kind_counts(self, users: int | None = None) -> tuple[int, int, int, int]:
        """``(shift, impulse, weekly, casual)`` for ``users`` users (default ``self.users``)."""
        n = self.users if users is None else users
        if n < 1:
            raise ValueError(f"users must be >= 1, not {n}")
        shift = round(n * self.shift_share)
        impulse = min(n - shift, round(n * self.impulse_share))
        weekly = min(n - shift - impulse, round(n * self.weekly_share))
        return shift, impulse, weekly, n - shift - impulse - weekly


SHIFTS_PARAMS: Final = ShiftsParams()
