"""Snapshots at many (user, time) cutoffs at once, vectorised over a sorted event table.

The batch half of the feature definitions (``features.definitions``): everything is
searchsorted, cumulative sums and gathers over per-user sorted arrays, no per-row Python.
:class:`BatchHistory` sorts and marks the table once; its queries are then cheap, and
cheapest when the queries come sorted by (user, time).
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

    def running(self, values: npt.NDArray[Any]) -> Int64s:
        """Cumulative sums restarted at each group: ``so_far`` reads them at a position."""
        total = np.cumsum(values, dtype=np.int64)
        before_group = np.where(self.starts > 0, total[np.maximum(self.starts - 1, 0)], 0)
        out: Int64s = total - before_group[self.group]
        return out


class BatchHistory:
    """An event table prepared for point-in-time queries at any (user, time)."""

    def __init__(self, table: EventTable) -> None:
        self.table = table
        n_users = table.n_users
        base = int(table.ts_ms[0]) if len(table) else 0
        span = (int(table.ts_ms[-1]) - base + 2) if len(table) else 2
        user = table.user.astype(np.int64)
        self._all = _Grouped.build(user, table.ts_ms, table.kind, n_users, base, span)

        is_activity = table.kind == ACTIVITY
        a = _Grouped.build(
            user[is_activity],
            table.ts_ms[is_activity],
            table.kind[is_activity],
            n_users,
            base,
            span,
        )
        starts_burst = a.first_of_group()
        starts_burst[1:] |= np.diff(a.ts) > BURST_GAP_MS
        self._activity = a
        self._bursts = a.running(starts_burst)
        self._burst_head = np.maximum.accumulate(np.where(starts_burst, np.arange(len(a.ts)), 0))

        s = _Grouped.build(
            user[~is_activity],
            table.ts_ms[~is_activity],
            table.kind[~is_activity],
            n_users,
            base,
            span,
        )
        self._sessions = s
        index = np.arange(len(s.ts), dtype=np.int64)
        first = s.first_of_group()
        after_connect = np.zeros(len(s.ts), dtype=bool)
        after_connect[1:] = ~first[1:] & (s.kind[:-1] == CONNECT)
        opens = (s.kind == CONNECT) & ~after_connect
        closes = (s.kind == DISCONNECT) & after_connect
        group_start = s.starts[s.group]
        # Latest opening / closing at or before each position, within the same user only.
        last_open = np.maximum.accumulate(np.where(opens, index, -1))
        self._last_open = np.where(last_open >= group_start, last_open, -1)
        last_close = np.maximum.accumulate(np.where(closes, index, -1))
        self._last_close = np.where(last_close >= group_start, last_close, -1)
        session_ms = np.where(closes, s.ts - s.ts[np.maximum(self._last_open, 0)], 0)
        previous_close = np.full(len(s.ts), -1, dtype=np.int64)
        previous_close[1:] = np.where(~first[1:], self._last_close[:-1], -1)
        has_gap = opens & (previous_close >= 0)
        gap_ms = np.where(has_gap, s.ts - s.ts[np.maximum(previous_close, 0)], 0)
        self._running = {
            "n_connects": s.running(opens),
            "n_sessions": s.running(closes),
            "sum_session_ms": s.running(session_ms),
            "n_gaps": s.running(has_gap),
            "sum_gap_ms": s.running(gap_ms),
        }
        opened = s.ts[opens]
        self._by_hour = _Grouped.build(
            s.group[opens] * HOURS + hour_of(opened),
            opened,
            s.kind[opens],
            n_users * HOURS,
            base,
            span,
        )
        self._connects = self._of_kind(CONNECT, user, n_users, base, span)

    def _of_kind(self, kind: int, user: Int64s, n_users: int, base: int, span: int) -> _Grouped:
        chosen = self.table.kind == kind
        return _Grouped.build(
            user[chosen], self.table.ts_ms[chosen], self.table.kind[chosen], n_users, base, span
        )

    def snapshots(self, users: npt.ArrayLike, t_ms: npt.ArrayLike) -> Snapshot:
        """Each user's history at the matching time: rows ``(users[i], t_ms[i])``."""
        u = np.asarray(users, dtype=np.int64)
        t = np.asarray(t_ms, dtype=np.int64)
        if len(u) != len(t):
            raise ValueError("users and t_ms must have the same length")
        seen = self._all.count_le(u, t) > 0
        first_seen = np.where(seen, self._all.ts[self._all.starts[u]], NEVER)
        return Snapshot(
            t_ms=t,
            first_seen_ms=first_seen,
            habit_hits=self._habit_hits(u, t),
            **self._activity_part(u, t),
            **self._session_part(u, t),
        )

    def connected(self, users: npt.ArrayLike, t_ms: npt.ArrayLike) -> Bools:
        """Whether each user is connected at the matching time (cheaper than a snapshot)."""
        u = np.asarray(users, dtype=np.int64)
        s = self._sessions
        count = s.count_le(u, np.asarray(t_ms, dtype=np.int64))
        connected: Bools = (count > 0) & (s.kind[s.last_index(u, count)] == CONNECT)
        return connected

    def next_connect(self, users: npt.ArrayLike, t_ms: npt.ArrayLike) -> Int64s:
        """Time of each user's first connect strictly after ``t_ms`` (NEVER if none)."""
        u = np.asarray(users, dtype=np.int64)
        c = self._connects
        position = c.starts[u] + c.count_le(u, np.asarray(t_ms, dtype=np.int64))
        exists = position < c.starts[u + 1]
        upcoming: Int64s = np.where(exists, c.ts[np.minimum(position, len(c.ts) - 1)], NEVER)
        return upcoming

    def _activity_part(self, u: Int64s, t: Int64s) -> dict[str, Any]:
        a = self._activity
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
        head = self._burst_head[last]
        out["n_bursts"] = np.where(has, self._bursts[last], 0)
        out["burst_start_ms"] = np.where(has, a.ts[head], NEVER)
        out["burst_count"] = np.where(has, last - head + 1, 0)
        return out

    def _session_part(self, u: Int64s, t: Int64s) -> dict[str, Any]:
        s = self._sessions
        count = s.count_le(u, t)
        has = count > 0
        last = s.last_index(u, count)

        def time_of(positions: Int64s) -> Int64s:
            at = positions[last]
            found: Int64s = np.where(has & (at >= 0), s.ts[np.maximum(at, 0)], NEVER)
            return found

        out: dict[str, Any] = {
            "connected": has & (s.kind[last] == CONNECT),
            "last_connect_ms": time_of(self._last_open),
            "last_disconnect_ms": time_of(self._last_close),
        }
        for name, running in self._running.items():
            out[name] = np.where(has, running[last], 0)
        return out

    def _habit_hits(self, u: Int64s, t: Int64s) -> npt.NDArray[np.float64]:
        """Past session openings in the hour of day of ``t``, plus half of its neighbours'."""
        hour = hour_of(t)
        hits = self._by_hour.count_le(u * HOURS + hour, t).astype(np.float64)
        for neighbour in ((hour - 1) % HOURS, (hour + 1) % HOURS):
            hits += 0.5 * self._by_hour.count_le(u * HOURS + neighbour, t)
        return hits


def snapshots(table: EventTable, users: npt.ArrayLike, t_ms: npt.ArrayLike) -> Snapshot:
    """One-off :meth:`BatchHistory.snapshots` (prepare a BatchHistory for many queries)."""
    return BatchHistory(table).snapshots(users, t_ms)
