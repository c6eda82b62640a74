"""Counting the events of a workload as they go by: the numbers a run summary reports."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from features.events import Channel, UserEvent

USER_CHANNELS: Final = (Channel.ACTIVITY.value, Channel.CONNECT.value, Channel.DISCONNECT.value)


@dataclass(slots=True)
class Tally:
    """Events per channel, distinct users and the time range seen so far."""

    by_channel: Counter[str] = field(default_factory=Counter)
    users: set[str] = field(default_factory=set)
    first_ts: float | None = None
    last_ts: float | None = None

    @property
    def events(self) -> int:
        return sum(self.by_channel.values())

    @property
    def connects(self) -> int:
        return self.by_channel[Channel.CONNECT.value]

    def add(self, event: UserEvent) -> None:
        self.by_channel[event.channel.value] += 1
        self.users.add(event.user_id)
        if self.first_ts is None:
            self.first_ts = event.ts
        self.last_ts = event.ts

    def count(self, events: Iterable[UserEvent]) -> Iterator[UserEvent]:
        """Pass ``events`` through, adding each one."""
        for event in events:
            self.add(event)
            yield event

    def as_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "by_channel": {name: self.by_channel[name] for name in USER_CHANNELS},
            "connects": self.connects,
            "users_seen": len(self.users),
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
        }
