"""The bridge: the seed's four pub/sub channels into the event log.

Pub/sub is at-most-once (a message published while no bridge listens is gone), which is
why everything downstream reads the stream instead. Messages are validated on arrival;
good ones are appended in arrival batches, bad ones are dead-lettered with their reason.
Redis errors never end the bridge: it reconnects with capped exponential backoff.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import redis

from features.clock import WALL_CLOCK, Clock
from features.eventlog import DeadLetter, EventLog
from features.events import BadEvent, Channel, Event, Rejection, parse_message

log = logging.getLogger(__name__)

MAX_BATCH: Final = 1000


@dataclass(slots=True)
class BridgeStats:
    received: int = 0
    appended: int = 0
    dead: Counter[str] = field(default_factory=Counter)
    reconnects: int = 0

    @property
    def dead_total(self) -> int:
        return sum(self.dead.values())


class Bridge:
    """Subscribes to ``<channel_prefix><channel>`` for the four channels and logs them."""

    def __init__(
        self,
        client: redis.Redis,
        event_log: EventLog,
        *,
        channel_prefix: str = "",
        clock: Clock = WALL_CLOCK,
        on_batch: Callable[[BridgeStats], None] | None = None,
    ) -> None:
        self.client = client
        self.event_log = event_log
        self.clock = clock
        self.channel_prefix = channel_prefix
        self.on_batch = on_batch
        self.stats = BridgeStats()
        self.subscribed = threading.Event()
        self._channels = {f"{channel_prefix}{c.value}": c for c in Channel}
        self._events: list[Event] = []
        self._letters: list[DeadLetter] = []

    def run(
        self,
        stop: threading.Event | None = None,
        *,
        max_messages: int | None = None,
        poll_s: float = 0.2,
    ) -> BridgeStats:
        """Bridge until ``stop`` is set or ``max_messages`` have been received."""
        stop = stop or threading.Event()
        backoff = 0.1
        while not stop.is_set() and not self._done(max_messages):
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(*self._channels)
                self.flush()  # anything received before Redis failed
                self.subscribed.set()
                backoff = 0.1
                self._pump(pubsub, stop, max_messages, poll_s)
            except redis.RedisError as e:
                self.subscribed.clear()
                self.stats.reconnects += 1
                log.warning("bridge lost Redis (%s); retrying in %.1f s", e, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                pubsub.close()
        return self.stats

    def _done(self, max_messages: int | None) -> bool:
        return max_messages is not None and self.stats.received >= max_messages

    def _pump(
        self,
        pubsub: redis.client.PubSub,
        stop: threading.Event,
        max_messages: int | None,
        poll_s: float,
    ) -> None:
        while not stop.is_set() and not self._done(max_messages):
            message = pubsub.get_message(timeout=poll_s)
            if message is None:
                continue
            batch = [message]
            while len(batch) < MAX_BATCH and not self._done_after(batch, max_messages):
                more = pubsub.get_message(timeout=0)
                if more is None:
                    break
                batch.append(more)
            self.handle(batch)

    def _done_after(self, batch: list[Any], max_messages: int | None) -> bool:
        return max_messages is not None and self.stats.received + len(batch) >= max_messages

    def handle(self, messages: list[dict[str, Any]]) -> None:
        """Validate and log one batch of pub/sub messages."""
        for message in messages:
            if message.get("type") != "message":
                continue
            self.stats.received += 1
            name = _text(message["channel"])
            data = message["data"]
            now = self.clock.now()
            try:
                channel = self._channels.get(name)
                if channel is None:  # not one we subscribed to (a pattern subscription?)
                    raise BadEvent(Rejection.UNKNOWN_CHANNEL, f"channel {name[:64]!r}")
                events = self._events
                limits = self.event_log.limits
                events.append(parse_message(channel.value, data, now=now, limits=limits))
            except BadEvent as e:
                raw = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
                self._letters.append(
                    DeadLetter(e.reason, e.detail, f"pubsub:{name}", str(raw), now)
                )
                self.stats.dead[e.reason.value] += 1
        self.flush()

    def flush(self) -> None:
        """Write what has been received; kept for the next try if Redis fails meanwhile."""
        if self._events:
            self.event_log.append_batch(self._events)
            self.stats.appended += len(self._events)
            self._events = []
        if self._letters:
            self.event_log.dead_letter(self._letters)
            self._letters = []
        if self.on_batch is not None:
            self.on_batch(self.stats)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value
