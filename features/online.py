"""Per-user feature state updated one event at a time: the online half of the definitions.

State is columnar (one flat ``array.array`` per quantity, a row per user): an update is a
few O(1) item operations (three times cheaper than on numpy arrays), and a snapshot of
every user is a copy into numpy plus a handful of vectorised operations. Memory per user
is bounded: ``RECENT_K`` activity times, ``MINUTE_SLOTS`` minute buckets, 24 hour-of-day
counters and a few scalars (see :meth:`OnlineFeatures.bytes_per_user`).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from features.definitions import (
    BURST_GAP_MS,
    HOUR_MS,
    HOURS,
    MINUTE_MS,
    MINUTE_SLOTS,
    MINUTE_WINDOWS,
    NEVER,
    RECENT_K,
    RECENT_WINDOWS_MS,
    Floats,
    Snapshot,
    compute_features,
    decayed_sum,
    hour_of,
)
from features.events import Event, UserActivity, UserConnect, UserDisconnect
from features.table import ACTIVITY, CONNECT, DISCONNECT, to_ms

_SCALARS: Final = (
    "first_seen",
    "last_activity",
    "last_connect",
    "last_disconnect",
    "burst_start",
    "n_activity",
    "n_connects",
    "n_sessions",
    "sum_session",
    "n_gaps",
    "sum_gap",
    "n_bursts",
    "burst_count",
)
_TIMES: Final = ("first_seen", "last_activity", "last_connect", "last_disconnect", "burst_start")


class OnlineFeatures:
    """Feature state of every user seen, fed event by event (in log order)."""

    def __init__(self, capacity: int = 1024) -> None:
        self._slots: dict[str, int] = {}
        self._ids: list[str] = []
        self._capacity = 0
        self._scalar: dict[str, array[int]] = {name: array("q") for name in _SCALARS}
        self._connected = array("b")
        self._recent = array("q")  # RECENT_K per user
        self._recent_pos = array("b")
        self._minute = array("i")  # MINUTE_SLOTS per user
        self._minute_count = array("h")
        self._hours = array("h")  # HOURS per user
        self._grow(max(capacity, 1))

    # -- feeding -------------------------------------------------------------------------

    def update(self, event: Event) -> None:
        """Apply one event (node events are ignored)."""
        if isinstance(event, UserActivity):
            self.apply(ACTIVITY, event.user_id, to_ms(event.ts))
        elif isinstance(event, UserConnect):
            self.apply(CONNECT, event.user_id, to_ms(event.ts))
        elif isinstance(event, UserDisconnect):
            self.apply(DISCONNECT, event.user_id, to_ms(event.ts))

    def update_many(self, events: Iterable[Event]) -> None:
        for event in events:
            self.update(event)

    def apply(self, kind: int, user_id: str, ts: int) -> None:
        """Apply one user event: ``kind`` from ``features.table``, time in ms."""
        s = self._slots.get(user_id)
        if s is None:
            s = self._new_slot(user_id)
        v = self._scalar
        if v["first_seen"][s] == NEVER:
            v["first_seen"][s] = ts
        if kind == ACTIVITY:
            last_activity = v["last_activity"]
            last = last_activity[s]
            if last == NEVER or ts - last > BURST_GAP_MS:
                v["n_bursts"][s] += 1
                v["burst_start"][s] = ts
                v["burst_count"][s] = 1
            else:
                v["burst_count"][s] += 1
            if ts > last:
                last_activity[s] = ts
            v["n_activity"][s] += 1
            position = self._recent_pos[s]
            self._recent[s * RECENT_K + position] = ts
            self._recent_pos[s] = (position + 1) % RECENT_K
            minute = ts // MINUTE_MS
            cell = s * MINUTE_SLOTS + minute % MINUTE_SLOTS
            held = self._minute[cell]
            if held == minute:
                self._minute_count[cell] += 1
            elif held < minute:  # an older minute has left every window: reuse the slot
                self._minute[cell] = minute
                self._minute_count[cell] = 1
        elif kind == CONNECT:
            if not self._connected[s]:
                self._connected[s] = 1
                v["n_connects"][s] += 1
                closed = v["last_disconnect"][s]
                if closed != NEVER:
                    v["n_gaps"][s] += 1
                    v["sum_gap"][s] += ts - closed
                v["last_connect"][s] = ts
                self._hours[s * HOURS + (ts // HOUR_MS) % HOURS] += 1
        elif kind == DISCONNECT and self._connected[s]:
            self._connected[s] = 0
            v["n_sessions"][s] += 1
            v["sum_session"][s] += ts - v["last_connect"][s]
            v["last_disconnect"][s] = ts

    # -- reading -------------------------------------------------------------------------

    @property
    def user_ids(self) -> Sequence[str]:
        return self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, user_id: object) -> bool:
        return user_id in self._slots

    def is_connected(self, user_id: str) -> bool:
        slot = self._slots.get(user_id)
        return slot is not None and bool(self._connected[slot])

    def users_ever_connected(self) -> int:
        """How many users have opened at least one session."""
        return int(
            np.count_nonzero(_column(self._scalar["n_connects"], copy=False)[: len(self._ids)])
        )

    def snapshot(self, now_ms: int, user_ids: Sequence[str] | None = None) -> Snapshot:
        """Histories at ``now_ms`` of ``user_ids`` (default: every user seen, in order).

        A user never seen gets the snapshot of an empty history.
        """
        rows: slice | npt.NDArray[np.intp]
        if user_ids is None:
            rows = slice(0, len(self._ids))  # views, no copies
        else:
            rows = np.array([self._slots.get(u, self._capacity) for u in user_ids], dtype=np.intp)
        return self._snapshot_rows(rows, now_ms)

    def features(self, now_ms: int, user_ids: Sequence[str] | None = None) -> Floats:
        """The feature matrix at ``now_ms`` (``features.definitions.FEATURE_NAMES`` columns)."""
        return compute_features(self.snapshot(now_ms, user_ids))

    def bytes_per_user(self) -> float:
        """Bytes of state held per user (arrays only, excluding the id map)."""
        arrays = [
            *self._scalar.values(),
            self._connected,
            self._recent,
            self._recent_pos,
            self._minute,
            self._minute_count,
            self._hours,
        ]
        return sum(a.itemsize * len(a) for a in arrays) / (self._capacity + 1)

    # -- forgetting ----------------------------------------------------------------------

    def compact(self, keep: npt.NDArray[np.bool_]) -> None:
        """Forget the users where ``keep`` (one flag per user, in ``user_ids`` order) is
        False; the others keep their state and their order. A user forgotten and seen again
        starts from an empty history."""
        n = len(self._ids)
        if keep.shape != (n,):
            raise ValueError(f"compact needs one flag per user ({n}), not {keep.shape}")
        slots = np.flatnonzero(keep)
        kept = len(slots)
        capacity = max(1, 2 * kept)
        spare = capacity - kept + 1  # empty rows, the spare row for unknown users included

        def take(column: array[int], width: int, fill: int) -> array[int]:
            rows = _column(column, width, copy=False)[slots]  # fancy indexing copies
            out = array(column.typecode, rows.tobytes())
            out.extend(array(column.typecode, [fill]) * (spare * width))
            return out

        self._scalar = {
            name: take(values, 1, NEVER if name in _TIMES else 0)
            for name, values in self._scalar.items()
        }
        self._connected = take(self._connected, 1, 0)
        self._recent = take(self._recent, RECENT_K, NEVER)
        self._recent_pos = take(self._recent_pos, 1, 0)
        self._minute = take(self._minute, MINUTE_SLOTS, NEVER)
        self._minute_count = take(self._minute_count, MINUTE_SLOTS, 0)
        self._hours = take(self._hours, HOURS, 0)
        self._capacity = capacity
        self._ids = [self._ids[slot] for slot in slots.tolist()]
        self._slots = {user_id: slot for slot, user_id in enumerate(self._ids)}

    # -- internals -----------------------------------------------------------------------

    def _new_slot(self, user_id: str) -> int:
        slot = len(self._ids)
        if slot >= self._capacity:
            self._grow(self._capacity * 2)
        self._slots[user_id] = slot
        self._ids.append(user_id)
        return slot

    def _grow(self, capacity: int) -> None:
        """Grow to ``capacity`` rows plus one spare row that stays empty (unknown users)."""
        extra = capacity - self._capacity + (0 if self._capacity else 1)
        for name, column in self._scalar.items():
            column.extend(array("q", [NEVER if name in _TIMES else 0]) * extra)
        self._connected.extend(array("b", [0]) * extra)
        self._recent.extend(array("q", [NEVER]) * (extra * RECENT_K))
        self._recent_pos.extend(array("b", [0]) * extra)
        self._minute.extend(array("i", [NEVER]) * (extra * MINUTE_SLOTS))
        self._minute_count.extend(array("h", [0]) * (extra * MINUTE_SLOTS))
        self._hours.extend(array("h", [0]) * (extra * HOURS))
        self._capacity = capacity

    def _snapshot_rows(self, rows: slice | npt.NDArray[np.intp], now_ms: int) -> Snapshot:
        # Picking rows (an index array) copies them; a slice of every user must be copied.
        whole = isinstance(rows, slice)
        v = {name: _column(values, copy=whole)[rows] for name, values in self._scalar.items()}
        t = np.full(len(v["first_seen"]), now_ms, dtype=np.int64)
        # The wide columns are read through views; only derived arrays leave this call.
        recent = _column(self._recent, RECENT_K, copy=False)[rows]
        valid_recent = (recent >= 0) & (recent <= now_ms)
        counts: dict[str, npt.NDArray[np.int64]] = {}
        for name, window in RECENT_WINDOWS_MS.items():
            counts[name] = np.count_nonzero(valid_recent & (recent > now_ms - window), axis=1)
        minute_now = now_ms // MINUTE_MS
        minutes = _column(self._minute, MINUTE_SLOTS, copy=False)[rows]
        per_minute = _column(self._minute_count, MINUTE_SLOTS, copy=False)[rows]
        not_future = minutes <= minute_now
        for name, span in MINUTE_WINDOWS.items():
            inside = not_future & (minutes > minute_now - span)
            counts[name] = np.where(inside, per_minute, 0).sum(axis=1, dtype=np.int64)
        hour = int(hour_of(np.array([now_ms]))[0])
        hours = _column(self._hours, HOURS, copy=False)[rows]
        habit = hours[:, hour] + 0.5 * (
            hours[:, (hour - 1) % HOURS].astype(np.float64) + hours[:, (hour + 1) % HOURS]
        )
        return Snapshot(
            t_ms=t,
            first_seen_ms=v["first_seen"],
            last_activity_ms=v["last_activity"],
            last_connect_ms=v["last_connect"],
            last_disconnect_ms=v["last_disconnect"],
            connected=_column(self._connected, copy=False)[rows].astype(np.bool_),
            decay_60s=decayed_sum(t, recent),
            n_activity=v["n_activity"],
            n_connects=v["n_connects"],
            n_sessions=v["n_sessions"],
            sum_session_ms=v["sum_session"],
            n_gaps=v["n_gaps"],
            sum_gap_ms=v["sum_gap"],
            n_bursts=v["n_bursts"],
            burst_start_ms=v["burst_start"],
            burst_count=v["burst_count"],
            habit_hits=habit,
            **counts,
        )


def _column(values: array[int], width: int = 1, *, copy: bool = True) -> npt.NDArray[Any]:
    """An array.array column in numpy. Without ``copy`` it is a view that must not outlive
    the call (the array cannot grow while a view of it exists)."""
    flat = np.frombuffer(values, dtype=np.dtype(values.typecode))
    if copy:
        flat = flat.copy()
    return flat if width == 1 else flat.reshape(-1, width)
