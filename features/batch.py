"""Snapshots at many (user, time) cutoffs at once, vectorised over a sorted event table.

The batch half of the feature definitions (``features.definitions``): everything is
searchsorted, cumulative sums and gathers over per-user sorted arrays, no per-row Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from features.definitions import (
    BURST_GAP_MS,
    HOURS,
    MINUTE_MS,
    MINUTE_WINDOWS,
    NEVER,
    RECENT_K,
    RECENT_WINDOWS_MS,
    Int64s,
    Snapshot,
    decayed_sum,
    hour_of,
)
from features.table import ACTIVITY, CONNECT, DISCONNECT, EventTable

Bools = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class _Grouped:
    """One selection of events sorted by (group, time), searchable by group and time.

    A sentinel event of an extra group closes the arrays, so that gathers at position 0
    are valid even for a group (or a whole selection) without events.
    """

    ts: Int64s
    kind: npt.NDArray[np.int8]
    group: Int64s
    keys: Int64s
    starts: Int64s
    """``starts[g]``: position of group g's first event."""
    base: int
    span: int

    @classmethod
    def build(
        cls,
        group: Int64s,
        ts: Int64s,
        kind: npt.NDArray[np.int8],
        n_groups: int,
        base: int,
        span: int,
    ) -> _Grouped:
        order = np.argsort(group, kind="stable")  # input is in time order: stays so per group
        group = np.append(group[order], n_groups)
        ts = np.append(ts[order], base)
        kind = np.append(kind[order], np.int8(-1))
        keys = group * span + (ts - base)
        starts = np.searchsorted(keys, np.arange(n_groups + 1, dtype=np.int64) * span)
        return cls(ts, kind, group, keys, starts.astype(np.int64), base, span)

    def count_le(self, group: Int64s, t: Int64s) -> Int64s:
        """How many events of ``group`` have time <= ``t`` (elementwise)."""
        offset = np.clip(t - self.base, -1, self.span - 1)
        found = np.searchsorted(self.keys, group * self.span + offset, side="right")
        count: Int64s = found.astype(np.int64) - self.starts[group]
        return count

    def last_index(self, group: Int64s, count: Int64s) -> Int64s:
        """Position of the ``count``-th event of each group (0 when count is 0)."""
        position: Int64s = np.maximum(self.starts[group] + count - 1, 0)
        return position

    def first_of_group(self) -> Bools:
        first = np.ones(len(self.ts), dtype=bool)
        first[1:] = self.group[1:] != self.group[:-1]
        return first

    def so_far(
        self, values: npt.NDArray[np.generic], group: Int64s, last: Int64s, has: Bools
    ) -> Int64s:
        """Sum of ``values`` over each group's events up to position ``last``."""
        running = np.cumsum(values, dtype=np.int64)
        first = self.starts[group]
        before = np.where(first > 0, running[np.maximum(first - 1, 0)], 0)
        return np.where(has, running[last] - before, 0)


def snapshots(table: EventTable, users: npt.ArrayLike, t_ms: npt.ArrayLike) -> Snapshot:
    """Each user's history at the matching time: rows ``(users[i], t_ms[i])``."""
    u = np.asarray(users, dtype=np.int64)
    t = np.asarray(t_ms, dtype=np.int64)
    if len(u) != len(t):
        raise ValueError("users and t_ms must have the same length")
    n_users = table.n_users
    base = int(table.ts_ms[0]) if len(table) else 0
    span = (int(table.ts_ms[-1]) - base + 2) if len(table) else 2
    user = table.user.astype(np.int64)

    everything = _Grouped.build(user, table.ts_ms, table.kind, n_users, base, span)
    first_ts = everything.ts[everything.starts[u]]
    first_seen = np.where(everything.count_le(u, t) > 0, first_ts, NEVER)

    is_activity = table.kind == ACTIVITY
    activity = _Grouped.build(
        user[is_activity], table.ts_ms[is_activity], table.kind[is_activity], n_users, base, span
    )
    sessions = _Grouped.build(
        user[~is_activity],
        table.ts_ms[~is_activity],
        table.kind[~is_activity],
        n_users,
        base,
        span,
    )
    opens, closes = _session_marks(sessions)
    return Snapshot(
        t_ms=t,
        first_seen_ms=first_seen,
        habit_hits=_habit_hits(sessions, opens, u, t, n_users),
        **_activity_part(activity, u, t),
        **_session_part(sessions, opens, closes, u, t),
    )


def _activity_part(a: _Grouped, u: Int64s, t: Int64s) -> dict[str, Any]:
    count = a.count_le(u, t)
    has = count > 0
    last = a.last_index(u, count)
    out: dict[str, Any] = {
        "n_activity": count,
        "last_activity_ms": np.where(has, a.ts[last], NEVER),
    }
    for name, window in RECENT_WINDOWS_MS.items():
        out[name] = np.minimum(count - a.count_le(u, t - window), RECENT_K)
    minute = t // MINUTE_MS
    for name, minutes in MINUTE_WINDOWS.items():
        out[name] = count - a.count_le(u, (minute - (minutes - 1)) * MINUTE_MS - 1)

    back = np.arange(RECENT_K, dtype=np.int64)
    recent = np.where(back < count[:, None], a.ts[np.maximum(last[:, None] - back, 0)], NEVER)
    out["decay_60s"] = decayed_sum(t, recent)

    starts_burst = a.first_of_group()
    starts_burst[1:] |= np.diff(a.ts) > BURST_GAP_MS
    burst_head = np.maximum.accumulate(np.where(starts_burst, np.arange(len(a.ts)), 0))
    out["n_bursts"] = a.so_far(starts_burst, u, last, has)
    out["burst_start_ms"] = np.where(has, a.ts[burst_head[last]], NEVER)
    out["burst_count"] = np.where(has, last - burst_head[last] + 1, 0)
    return out


def _session_marks(s: _Grouped) -> tuple[Bools, Bools]:
    """Which connects open a session and which disconnects close one (module docstring)."""
    after_connect = np.zeros(len(s.ts), dtype=bool)
    after_connect[1:] = ~s.first_of_group()[1:] & (s.kind[:-1] == CONNECT)
    return (s.kind == CONNECT) & ~after_connect, (s.kind == DISCONNECT) & after_connect


def _session_part(s: _Grouped, opens: Bools, closes: Bools, u: Int64s, t: Int64s) -> dict[str, Any]:
    index = np.arange(len(s.ts), dtype=np.int64)
    group_start = s.starts[s.group]
    # Latest opening / closing at or before each position, within the same user only.
    last_open = np.maximum.accumulate(np.where(opens, index, -1))
    last_open = np.where(last_open >= group_start, last_open, -1)
    last_close = np.maximum.accumulate(np.where(closes, index, -1))
    last_close = np.where(last_close >= group_start, last_close, -1)

    session_ms = np.where(closes, s.ts - s.ts[np.maximum(last_open, 0)], 0)
    previous_close = np.full(len(s.ts), -1, dtype=np.int64)
    previous_close[1:] = np.where(index[1:] > group_start[1:], last_close[:-1], -1)
    has_gap = opens & (previous_close >= 0)
    gap_ms = np.where(has_gap, s.ts - s.ts[np.maximum(previous_close, 0)], 0)

    count = s.count_le(u, t)
    has = count > 0
    last = s.last_index(u, count)

    def time_of(positions: Int64s) -> Int64s:
        at = positions[last]
        return np.where(has & (at >= 0), s.ts[np.maximum(at, 0)], NEVER)

    return {
        "connected": has & (s.kind[last] == CONNECT),
        "last_connect_ms": time_of(last_open),
        "last_disconnect_ms": time_of(last_close),
        "n_connects": s.so_far(opens, u, last, has),
        "n_sessions": s.so_far(closes, u, last, has),
        "sum_session_ms": s.so_far(session_ms, u, last, has),
        "n_gaps": s.so_far(has_gap, u, last, has),
        "sum_gap_ms": s.so_far(gap_ms, u, last, has),
    }


def _habit_hits(
    s: _Grouped, opens: Bools, u: Int64s, t: Int64s, n_users: int
) -> npt.NDArray[np.float64]:
    """Past session openings per hour of day: the hour of ``t`` plus half of its neighbours."""
    ts = s.ts[opens]
    by_hour = _Grouped.build(
        s.group[opens] * HOURS + hour_of(ts), ts, s.kind[opens], n_users * HOURS, s.base, s.span
    )
    hour = hour_of(t)
    hits = by_hour.count_le(u * HOURS + hour, t).astype(np.float64)
    for neighbour in ((hour - 1) % HOURS, (hour + 1) % HOURS):
        hits += 0.5 * by_hour.count_le(u * HOURS + neighbour, t)
    return hits


def next_time(table: EventTable, kind: int, users: npt.ArrayLike, t_ms: npt.ArrayLike) -> Int64s:
    """Time of each user's first event of ``kind`` strictly after ``t_ms`` (NEVER if none)."""
    u = np.asarray(users, dtype=np.int64)
    t = np.asarray(t_ms, dtype=np.int64)
    base = int(table.ts_ms[0]) if len(table) else 0
    span = (int(table.ts_ms[-1]) - base + 2) if len(table) else 2
    chosen = table.kind == kind
    events = _Grouped.build(
        table.user[chosen].astype(np.int64),
        table.ts_ms[chosen],
        table.kind[chosen],
        table.n_users,
        base,
        span,
    )
    count = events.count_le(u, t)
    position = events.starts[u] + count
    exists = position < events.starts[u + 1]
    return np.where(exists, events.ts[np.minimum(position, len(events.ts) - 1)], NEVER)
