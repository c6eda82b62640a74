"""Feeds user connect/disconnect messages from Redis pub/sub into :class:`UserTime`.

Subscribes to ``<prefix>user:connect`` and ``<prefix>user:disconnect``. Messages are
validated with :func:`features.events.parse_message` and stamped on arrival with the
clock; bad ones are ignored and counted by reason. Redis errors never end the feed: it
resubscribes with capped exponential backoff (messages published meanwhile are lost,
as pub/sub goes).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Final

import redis.asyncio
from redis.exceptions import RedisError

from features.clock import Clock
from features.events import (
    DEFAULT_LIMITS,
    BadEvent,
    Channel,
    Limits,
    Rejection,
    parse_message,
)
from simulation.nodes.usertime import UserTime

log = logging.getLogger(__name__)

USER_CHANNELS: Final = (Channel.CONNECT, Channel.DISCONNECT)
MAX_BACKOFF_S: Final = 5.0


@dataclass(slots=True)
class FeedStats:
    received: int = 0
    applied: int = 0
    """Messages that opened or closed a session."""
    bad: Counter[str] = field(default_factory=Counter)
    """Invalid messages by :class:`features.events.Rejection` reason."""
    reconnects: int = 0

    @property
    def bad_total(self) -> int:
        return sum(self.bad.values())


class UserFeed:
    def __init__(
        self,
        client: redis.asyncio.Redis,
        users: UserTime,
        clock: Clock,
        *,
        channel_prefix: str = "",
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self.client = client
        self.users = users
        self.clock = clock
        self.limits = limits
        self.stats = FeedStats()
        self.channels = {f"{channel_prefix}{c.value}": c for c in USER_CHANNELS}

    def handle(self, channel: bytes | str, data: bytes | str) -> None:
        """Apply one pub/sub message received on one of :attr:`channels`."""
        self.stats.received += 1
        name = channel.decode("utf-8", "replace") if isinstance(channel, bytes) else channel
        kind = self.channels.get(name)
        if kind is None:
            self.stats.bad[Rejection.UNKNOWN_CHANNEL.value] += 1
            return
        try:
            event = parse_message(kind.value, data, now=self.clock.now(), limits=self.limits)
        except BadEvent as e:
            self.stats.bad[e.reason.value] += 1
            log.warning("ignored a bad message on %s: %s", name, e)
            return
        if self.users.apply(event):
            self.stats.applied += 1

    async def run(self) -> None:
        """Subscribe and apply messages until cancelled."""
        backoff = 0.1
        while True:
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(*self.channels)
                log.info("following %s", ", ".join(self.channels))
                backoff = 0.1
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
                    if message is not None and message.get("type") == "message":
                        self.handle(message["channel"], message["data"])
            except (RedisError, OSError) as e:
                self.stats.reconnects += 1
                log.warning("user feed lost Redis (%r); resubscribing in %.1f s", e, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
            finally:
                await pubsub.aclose()
