"""Connected user time, from ``user:connect`` / ``user:disconnect`` events.

Pure: events carry their time and queries are handed ``now``. A session runs from a
connect to the next disconnect of the same user; an open session counts up to ``now``.
A connect while already connected keeps the first session (counted as a duplicate); a
disconnect without an open session is ignored (counted as an orphan).
"""

from __future__ import annotations

from features.events import Event, UserConnect, UserDisconnect


class UserTime:
    def __init__(self) -> None:
        self._open: dict[str, float] = {}  # user id -> session start
        self._seen: set[str] = set()
        self._closed_seconds = 0.0
        self.sessions = 0
        """Sessions closed by a disconnect."""
        self.duplicate_connects = 0
        self.orphan_disconnects = 0

    def connect(self, user_id: str, at: float) -> bool:
        """Start a session; False (and nothing changes) when the user is already connected."""
        self._seen.add(user_id)
        if user_id in self._open:
            self.duplicate_connects += 1
            return False
        self._open[user_id] = at
        return True

    def disconnect(self, user_id: str, at: float) -> bool:
        """End the user's session; False when the user had none open."""
        start = self._open.pop(user_id, None)
        if start is None:
            self.orphan_disconnects += 1
            return False
        self._closed_seconds += max(0.0, at - start)
        self.sessions += 1
        return True

    def apply(self, event: Event) -> bool:
        """Feed a connect or disconnect event; other events are ignored (False)."""
        if isinstance(event, UserConnect):
            return self.connect(event.user_id, event.ts)
        if isinstance(event, UserDisconnect):
            return self.disconnect(event.user_id, event.ts)
        return False

    def connected(self) -> set[str]:
        """Users with an open session."""
        return set(self._open)

    @property
    def user_count(self) -> int:
        """Users ever seen connecting."""
        return len(self._seen)

    def user_seconds(self, now: float) -> float:
        """Closed sessions plus open ones counted up to ``now``."""
        return self._closed_seconds + sum(max(0.0, now - s) for s in self._open.values())
