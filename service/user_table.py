"""The users a decision core tracks: one row each, in arrays that grow as users come.

A row holds when the user was last seen (what counts as seen is the core's own rule: any user
event for the engine, activity for the seed rule) and whether the user is connected.
``ids[row]`` names the user of a row. Rows are only removed by :meth:`UserTable.compact`,
which keeps the order of the rows it keeps (so a row's new index is its rank among them).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

INITIAL_ROWS = 1024


class UserTable:
    def __init__(self) -> None:
        self.ids: list[str] = []
        """User ids by row; the list only grows, so views of it stay current until a
        ``compact`` replaces it."""
        self.last_seen: Floats = np.full(INITIAL_ROWS, -np.inf, dtype=np.float64)
        """Per row, when the user was last seen (-inf: never); only the first ``len`` rows
        are users."""
        self.connected: Bools = np.zeros(INITIAL_ROWS, dtype=np.bool_)
        self._rows: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, user_id: object) -> bool:
        return user_id in self._rows

    def row(self, user_id: str) -> int:
        """The user's row, added (never seen, not connected) on first sight."""
        row = self._rows.get(user_id)
        if row is None:
            row = len(self.ids)
            if row >= len(self.last_seen):
                self._grow(2 * len(self.last_seen))
            self._rows[user_id] = row
            self.ids.append(user_id)
        return row

    def _grow(self, size: int) -> None:
        seen = np.full(size, -np.inf, dtype=np.float64)
        seen[: len(self.last_seen)] = self.last_seen
        connected = np.zeros(size, dtype=np.bool_)
        connected[: len(self.connected)] = self.connected
        self.last_seen, self.connected = seen, connected

    def compact(self, keep: Bools) -> None:
        """Keep only the rows where ``keep`` (one flag per row) holds, in their order."""
        n = len(self.ids)
        if keep.shape != (n,):
            raise ValueError(f"compact needs one flag per row ({n}), not {keep.shape}")
        rows = np.flatnonzero(keep)
        size = max(INITIAL_ROWS, 2 * len(rows))
        seen = np.full(size, -np.inf, dtype=np.float64)
        seen[: len(rows)] = self.last_seen[rows]
        connected = np.zeros(size, dtype=np.bool_)
        connected[: len(rows)] = self.connected[rows]
        self.last_seen, self.connected = seen, connected
        self.ids = [self.ids[row] for row in rows.tolist()]
        self._rows = {user_id: row for row, user_id in enumerate(self.ids)}
