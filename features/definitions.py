"""The per-user features: each defined once, here.

A feature is computed in two steps. First a :class:`Snapshot` of what a user's history
looks like at time ``t`` (last times, window counts, session and burst totals). There are
two ways to get one: incrementally per event (``features.online``) and in batch at many
cutoffs over a sorted event table (``features.batch``); a parity test holds them equal.
Then :func:`compute_features` turns snapshots into the feature matrix, the same code for
both paths. A snapshot at ``t`` sees only events with time ``<= t``.

Sessions: a connect opens one when the user is not connected; a disconnect closes the
open one. Repeated connects or disconnects change nothing (the seed's publishers do not
repeat them, but real systems do). Bursts: an activity more than ``BURST_GAP_MS`` after
the user's previous activity starts a new burst.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Final

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
Int64s = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

NEVER: Final = -1
"""Sentinel time (ms) for "has not happened"."""

RECENT_K: Final = 16
"""Activity times kept exactly; the 30 s and 2 min counts saturate at this."""
RECENT_WINDOWS_MS: Final = {"act_30s": 30_000, "act_2m": 120_000}
MINUTE_MS: Final = 60_000
MINUTE_SLOTS: Final = 60
MINUTE_WINDOWS: Final = {"act_10m": 10, "act_1h": 60}
"""Counts over the current and the previous N-1 whole minutes."""
DECAY_TAU_MS: Final = 60_000.0
DECAY_SPAN_MS: Final = 20 * 60_000
BURST_GAP_MS: Final = 120_000
RECENCY_CAP_S: Final = 7 * 86_400.0
"""Recencies are capped here; "never" reads as the cap."""
HOURS: Final = 24
DAY_MS: Final = 86_400_000
HOUR_MS: Final = 3_600_000


@dataclass(slots=True)
class Snapshot:
    """Users' histories at times ``t_ms`` (one row per user and time), as arrays."""

    t_ms: Int64s
    first_seen_ms: Int64s
    last_activity_ms: Int64s
    last_connect_ms: Int64s
    last_disconnect_ms: Int64s
    connected: Bools
    act_30s: Int64s
    act_2m: Int64s
    act_10m: Int64s
    act_1h: Int64s
    decay_60s: Floats
    """Sum of exp(-age / 60 s) over the ``RECENT_K`` latest activities."""
    n_activity: Int64s
    n_connects: Int64s
    n_sessions: Int64s
    sum_session_ms: Int64s
    n_gaps: Int64s
    sum_gap_ms: Int64s
    n_bursts: Int64s
    burst_start_ms: Int64s
    burst_count: Int64s
    habit_hits: Floats
    """Past connects in the hour of day of ``t`` plus half of those in the hours beside it."""

    def __len__(self) -> int:
        return len(self.t_ms)

    def rows(self, index: npt.NDArray[np.intp]) -> Snapshot:
        return Snapshot(**{f.name: getattr(self, f.name)[index] for f in fields(self)})


FEATURE_NAMES: Final = (
    "since_activity_s",
    "since_connect_s",
    "since_disconnect_s",
    "act_30s",
    "act_2m",
    "act_10m",
    "act_1h",
    "act_decay_60s",
    "connected",
    "n_sessions",
    "mean_session_s",
    "mean_gap_s",
    "gap_ratio",
    "burst_len_s",
    "burst_count",
    "connects_per_burst",
    "hour_sin",
    "hour_cos",
    "day_of_week",
    "is_weekend",
    "habit_now",
    "days_seen",
    "connects_per_day",
)
"""Column order of the feature matrix; stored with every model."""
CALENDAR_FEATURES: Final = ("hour_sin", "hour_cos", "day_of_week", "is_weekend", "habit_now")
"""Features that say what time it is, or read the users' history at this hour of the day.
Over an hour of live traffic the clock takes one value, so their distribution is the
hour's, not the users'."""
HISTORY_LENGTH_FEATURES: Final = ("n_sessions", "days_seen", "connects_per_day")
"""Features that grow with the length of the history they are computed on (counts since the
user was first seen; connects per day divides by at least one day). A model trained on a
window of the log and a service that has run for longer see them on histories of other
lengths, so their distributions differ by construction."""
RECENCY_FEATURES: Final = ("since_activity_s", "since_connect_s", "since_disconnect_s")
"""Seconds since the user's last event of each kind (``RECENCY_CAP_S`` when never)."""


def seen_within(matrix: Floats, seconds: float) -> Bools:
    """Rows of a feature matrix (``FEATURE_NAMES`` columns) whose user had any user event
    within the last ``seconds``: the users the service scores."""
    columns = [FEATURE_NAMES.index(name) for name in RECENCY_FEATURES]
    recent: Bools = np.min(matrix[:, columns], axis=1) <= seconds
    return recent


def compute_features(snap: Snapshot) -> Floats:
    """The feature matrix (rows of ``snap`` x ``FEATURE_NAMES``), float64."""
    t = snap.t_ms
    since_activity = _since(t, snap.last_activity_ms)
    since_disconnect = _since(t, snap.last_disconnect_ms)
    mean_session = snap.sum_session_ms / 1000.0 / np.maximum(snap.n_sessions, 1)
    mean_gap = snap.sum_gap_ms / 1000.0 / np.maximum(snap.n_gaps, 1)
    has_gap_history = (snap.n_gaps > 0) & ~snap.connected & (snap.last_disconnect_ms >= 0)
    gap_ratio = np.where(has_gap_history, since_disconnect / np.maximum(mean_gap, 1.0), -1.0)
    in_burst = (snap.last_activity_ms >= 0) & (t - snap.last_activity_ms <= BURST_GAP_MS)
    burst_len = np.where(in_burst, (t - snap.burst_start_ms) / 1000.0, 0.0)
    angle = (t % DAY_MS) * (2.0 * np.pi / DAY_MS)
    day_of_week = (t // DAY_MS + 3) % 7  # 1970-01-01 was a Thursday; Monday is 0
    days_seen = np.where(snap.first_seen_ms >= 0, (t - snap.first_seen_ms) / DAY_MS, 0.0)
    columns = (
        since_activity,
        _since(t, snap.last_connect_ms),
        since_disconnect,
        snap.act_30s,
        snap.act_2m,
        snap.act_10m,
        snap.act_1h,
        snap.decay_60s,
        snap.connected,
        snap.n_sessions,
        mean_session,
        mean_gap,
        gap_ratio,
        burst_len,
        np.where(in_burst, snap.burst_count, 0),
        snap.n_connects / np.maximum(snap.n_bursts, 1),
        np.sin(angle),
        np.cos(angle),
        day_of_week,
        day_of_week >= 5,
        snap.habit_hits / np.maximum(snap.n_connects, 1),
        days_seen,
        snap.n_connects / np.maximum(days_seen, 1.0),
    )
    matrix = np.empty((len(t), len(FEATURE_NAMES)), dtype=np.float64)
    for j, column in enumerate(columns):
        matrix[:, j] = column
    return matrix


def _since(t: Int64s, then: Int64s) -> Floats:
    seconds = np.minimum((t - then) / 1000.0, RECENCY_CAP_S)
    return np.where(then >= 0, seconds, RECENCY_CAP_S)


def decayed_sum(t: Int64s, recent: Int64s) -> Floats:
    """Sum of exp(-(t - r) / tau) over the times ``0 <= r <= t`` in each row that are less
    than ``DECAY_SPAN_MS`` old (older ones would add under 2e-9 each)."""
    age = t[:, None] - recent
    counted = (recent >= 0) & (age >= 0) & (age < DECAY_SPAN_MS)
    weights = np.zeros(age.shape, dtype=np.float64)
    weights[counted] = np.exp(age[counted] / -DECAY_TAU_MS)
    total: Floats = weights.sum(axis=1)
    return total


def hour_of(t_ms: Int64s) -> Int64s:
    return (t_ms // HOUR_MS) % HOURS
