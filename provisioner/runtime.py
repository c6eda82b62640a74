"""Wiring: turns Settings into the clients and objects the other packages are handed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from features.clock import ScaledClock
from features.eventlog import EventLog, LogKeys, Retention
from features.events import Limits
from provisioner.embedded_redis import EmbeddedRedis
from provisioner.settings import Settings


def limits(settings: Settings) -> Limits:
    return Limits(
        max_payload_bytes=settings.max_payload_bytes,
        max_id_length=settings.max_id_length,
        max_future_skew_s=settings.max_future_skew_s,
    )


def clock(settings: Settings) -> ScaledClock:
    if settings.speed == 1.0:
        return ScaledClock()
    anchor = settings.clock_anchor if settings.clock_anchor is not None else time.time()
    return ScaledClock(anchor=anchor, speed=settings.speed)


def embedded_redis(settings: Settings) -> EmbeddedRedis:
    return EmbeddedRedis(settings.home / "redis", port=settings.embedded_redis_port)


@contextmanager
def redis_url(settings: Settings) -> Iterator[str]:
    """``REDIS_URL``, or the URL of the embedded server (started if needed, then stopped)."""
    if settings.redis_url:
        yield settings.redis_url
        return
    with embedded_redis(settings) as server:
        yield server.url


@contextmanager
def redis_client(settings: Settings) -> Iterator[redis.Redis]:
    """A client for ``REDIS_URL``, or for the embedded server (started if needed)."""
    with redis_url(settings) as url:
        client = redis.Redis.from_url(url)
        try:
            yield client
        finally:
            client.close()


def event_log(settings: Settings, client: redis.Redis) -> EventLog:
    return EventLog(
        client,
        LogKeys(settings.key_prefix),
        retention=Retention(settings.stream_max_len, settings.stream_max_age_s),
        limits=limits(settings),
    )
