"""Users who leave for good: an event stream cut at a moment, open sessions left to end."""

from __future__ import annotations

from collections.abc import Iterator

from features.events import UserConnect, UserDisconnect, UserEvent


def until(events: Iterator[UserEvent], change_at: float) -> Iterator[UserEvent]:
    """``events`` before ``change_at``, then only the disconnects that end the sessions open
    at ``change_at``."""
    connected: set[str] = set()
    for event in events:
        if event.ts < change_at:
            if isinstance(event, UserConnect):
                connected.add(event.user_id)
            elif isinstance(event, UserDisconnect):
                connected.discard(event.user_id)
            yield event
            continue
        if not connected:
            return
        if isinstance(event, UserDisconnect) and event.user_id in connected:
            connected.discard(event.user_id)
            yield event
