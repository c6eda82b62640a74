"""Per-user feature state updated one event at a time: the online half of the definitions.

State is columnar (one numpy array per quantity, a row per user), so that an update is
O(1) and a snapshot of every user is a handful of vectorised operations. Memory per user
is bounded: ``RECENT_K`` activity times, ``MINUTE_SLOTS`` minute buckets, 24 hour-of-day
counters and a few scalars (see :meth:`OnlineFeatures.bytes_per_user`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final, TypeVar

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

_Array = TypeVar("_Array", bound=npt.NDArray[Any])
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
        self._scalar: dict[str, npt.NDArray[np.int64]] = {}
        self._connected = np.zeros(0, dtype=np.bool_)
        self._recent = np.zeros((0, RECENT_K), dtype=np.int64)
        self._recent_pos = np.zeros(0, dtype=np.int8)
        self._minute = np.zeros((0, MINUTE_SLOTS), dtype=np.int32)
        self._minute_count = np.zeros((0, MINUTE_SLOTS), dtype=np.int16)
        self._hours = np.zeros((0, HOURS), dtype=np.int16)
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
        s = self._slot(user_id)
        v = self._scalar
        if v["first_seen"][s] == NEVER:
            v["first_seen"][s] = ts
        if kind == ACTIVITY:
            last = int(v["last_activity"][s])
            if last == NEVER or ts - last > BURST_GAP_MS:
                v["n_bursts"][s] += 1
                v["burst_start"][s] = ts
                v["burst_count"][s] = 1
            else:
                v["burst_count"][s] += 1
            v["last_activity"][s] = max(last, ts)
            v["n_activity"][s] += 1
            position = int(self._recent_pos[s])
            self._recent[s, position] = ts
            self._recent_pos[s] = (position + 1) % RECENT_K
            minute = ts // MINUTE_MS
            slot = minute % MINUTE_SLOTS
            held = int(self._minute[s, slot])
            if held == minute:
                self._minute_count[s, slot] += 1
            elif held < minute:  # an older minute has left every window: reuse the slot
                self._minute[s, slot] = minute
                self._minute_count[s, slot] = 1
        elif kind == CONNECT:
            if not self._connected[s]:
                self._connected[s] = True
                v["n_connects"][s] += 1
                closed = int(v["last_disconnect"][s])
                if closed != NEVER:
                    v["n_gaps"][s] += 1
                    v["sum_gap"][s] += ts - closed
                v["last_connect"][s] = ts
                self._hours[s, (ts // HOUR_MS) % HOURS] += 1
        elif kind == DISCONNECT and self._connected[s]:
            self._connected[s] = False
            v["n_sessions"][s] += 1
            v["sum_session"][s] += ts - int(v["last_connect"][s])
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
        return int((self._scalar["n_connects"][: len(self._ids)] > 0).sum())

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
        return sum(a.nbytes for a in arrays) / self._capacity

    # -- internals -----------------------------------------------------------------------

    def _slot(self, user_id: str) -> int:
        slot = self._slots.get(user_id)
        if slot is None:
            slot = len(self._ids)
            if slot >= self._capacity:
                self._grow(self._capacity * 2)
            self._slots[user_id] = slot
            self._ids.append(user_id)
        return slot

    def _grow(self, capacity: int) -> None:
        """Resize to ``capacity`` rows plus one spare row that stays empty (unknown users)."""
        old = self._capacity
        rows = capacity + 1
        for name in _SCALARS:
            fill = NEVER if name in _TIMES else 0
            grown = np.full(rows, fill, dtype=np.int64)
            grown[:old] = self._scalar[name][:old] if old else grown[:0]
            self._scalar[name] = grown
        self._connected = _resized(self._connected, rows, old, False)
        self._recent = _resized(self._recent, rows, old, NEVER)
        self._recent_pos = _resized(self._recent_pos, rows, old, 0)
        self._minute = _resized(self._minute, rows, old, NEVER)
        self._minute_count = _resized(self._minute_count, rows, old, 0)
        self._hours = _resized(self._hours, rows, old, 0)
        self._capacity = capacity

    def _snapshot_rows(self, rows: slice | npt.NDArray[np.intp], now_ms: int) -> Snapshot:
        v = {name: values[rows] for name, values in self._scalar.items()}
        t = np.full(len(v["first_seen"]), now_ms, dtype=np.int64)
        recent = self._recent[rows]
        valid_recent = (recent >= 0) & (recent <= now_ms)
        counts: dict[str, npt.NDArray[np.int64]] = {}
        for name, window in RECENT_WINDOWS_MS.items():
            counts[name] = np.count_nonzero(valid_recent & (recent > now_ms - window), axis=1)
        minute_now = now_ms // MINUTE_MS
        minutes = self._minute[rows]
        per_minute = self._minute_count[rows]
        not_future = minutes <= minute_now
        for name, span in MINUTE_WINDOWS.items():
            inside = not_future & (minutes > minute_now - span)
            counts[name] = np.where(inside, per_minute, 0).sum(axis=1, dtype=np.int64)
        hour = int(hour_of(np.array([now_ms]))[0])
        hours = self._hours[rows]
        habit = hours[:, hour] + 0.5 * (
            hours[:, (hour - 1) % HOURS].astype(np.float64) + hours[:, (hour + 1) % HOURS]
        )
        return Snapshot(
            t_ms=t,
            first_seen_ms=v["first_seen"],
            last_activity_ms=v["last_activity"],
            last_connect_ms=v["last_connect"],
            last_disconnect_ms=v["last_disconnect"],
            connected=self._connected[rows],
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


def _resized(array: _Array, rows: int, old: int, fill: object) -> _Array:
    grown = np.full((rows, *array.shape[1:]), fill, dtype=array.dtype)
    grown[:old] = array[:old]
    return grown  # type: ignore[return-value]
