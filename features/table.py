"""User events as columns: the form both feature paths and the labels are computed from.

Times are integer milliseconds (``to_ms``), so that the online and the batch path compare
exactly the same numbers. Node events carry no user and are left out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import numpy as np
import numpy.typing as npt

from features.events import Channel, Event, UserActivity, UserConnect, UserDisconnect

if TYPE_CHECKING:
    import pyarrow as pa

ACTIVITY: Final = 0
CONNECT: Final = 1
DISCONNECT: Final = 2
KIND_OF_CHANNEL: Final = {
    Channel.ACTIVITY.value: ACTIVITY,
    Channel.CONNECT.value: CONNECT,
    Channel.DISCONNECT.value: DISCONNECT,
}

Int64s = npt.NDArray[np.int64]
Int32s = npt.NDArray[np.int32]
Int8s = npt.NDArray[np.int8]


def to_ms(ts: float) -> int:
    """Event time in whole milliseconds (round half to even, like ``np.rint``)."""
    return round(ts * 1000)


@dataclass(frozen=True, slots=True)
class EventTable:
    """User events sorted by time (ties keep log order).

    Built by :meth:`from_codes` (and so by :meth:`from_events` and :meth:`from_arrow`), a
    table's ``user_ids`` are in sorted order: a user's code is its rank among the table's
    users, whatever order the events were read in. So the same events give the same table
    from the log, a trace or the parts of a partitioned export, and a part's codes map to
    the whole's by the ids alone (``training.distributed``).
    """

    ts_ms: Int64s
    kind: Int8s
    user: Int32s
    """Index into ``user_ids``."""
    user_ids: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.ts_ms)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @classmethod
    def from_codes(
        cls, ts: npt.ArrayLike, kind: npt.ArrayLike, user: npt.ArrayLike, user_ids: Iterable[str]
    ) -> EventTable:
        """Build from parallel columns: time in seconds, kind code, index into ``user_ids``
        (which are then renumbered in the ids' sorted order)."""
        seconds = np.asarray(ts, dtype=np.float64)
        codes = np.asarray(kind, dtype=np.int8)
        users = np.asarray(user, dtype=np.int32)
        if not (len(seconds) == len(codes) == len(users)):
            raise ValueError("ts, kind and user must have the same length")
        ids = list(user_ids)
        by_id = sorted(range(len(ids)), key=ids.__getitem__)
        rank = np.empty(len(ids), dtype=np.int32)
        rank[by_id] = np.arange(len(ids), dtype=np.int32)
        ts_ms = np.rint(seconds * 1000).astype(np.int64)
        order = np.argsort(ts_ms, kind="stable")
        return cls(ts_ms[order], codes[order], rank[users[order]], tuple(ids[i] for i in by_id))

    @classmethod
    def from_events(cls, events: Iterable[Event]) -> EventTable:
        ts: list[float] = []
        kinds: list[int] = []
        users: list[int] = []
        index: dict[str, int] = {}
        for event in events:
            if isinstance(event, UserActivity):
                kinds.append(ACTIVITY)
            elif isinstance(event, UserConnect):
                kinds.append(CONNECT)
            elif isinstance(event, UserDisconnect):
                kinds.append(DISCONNECT)
            else:
                continue
            ts.append(event.ts)
            users.append(index.setdefault(event.user_id, len(index)))
        return cls.from_codes(ts, kinds, users, index)

    @classmethod
    def from_arrow(cls, table: pa.Table) -> EventTable:
        """From flat columns ``ts``, ``channel``, ``user_id`` (the Parquet trace form)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        channel = table.column("channel")
        users = table.column("user_id")
        keep = pc.fill_null(pc.is_in(channel, pa.array(list(KIND_OF_CHANNEL))), False)
        channel, users = pc.filter(channel, keep), pc.filter(users, keep)
        ts = pc.filter(table.column("ts"), keep).to_numpy()
        codes = np.zeros(len(ts), dtype=np.int8)
        for name, code in KIND_OF_CHANNEL.items():
            codes[pc.equal(channel, name).to_numpy(zero_copy_only=False)] = code
        encoded = pc.dictionary_encode(users).combine_chunks()
        return cls.from_codes(
            ts,
            codes,
            encoded.indices.to_numpy(zero_copy_only=False),
            encoded.dictionary.to_pylist(),
        )

    def user_index(self, user_id: str) -> int:
        """Position of ``user_id`` in ``user_ids``."""
        return self.user_ids.index(user_id)
