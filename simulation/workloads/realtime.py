"""Publishing a workload on Redis pub/sub as (scaled) time goes by, like the Go simulator.

Each event is published when ``clock.now()`` reaches its ``ts``, on channel
``channel_prefix + event.channel.value``, with the Go publishers' payload
(:func:`features.events.encode_payload`). An activity's ``timestamp`` is the clock's time
at publish, in whole seconds, as the Go simulator stamped it. Waits go through
``stop.wait`` in short slices, so setting ``stop`` (Ctrl-C, SIGTERM) ends a run promptly.
Pub/sub is at-most-once: a message Redis refuses is counted as failed and the run goes on.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import redis

from features.clock import Clock
from features.events import UserActivity, UserEvent, encode_payload
from simulation.workloads.catalog import generate
from simulation.workloads.tally import Tally

log = logging.getLogger(__name__)


@dataclass(slots=True)
class PublishReport:
    """What a realtime run published (``tally``), lost to Redis errors, and why it ended."""

    tally: Tally = field(default_factory=Tally)
    failed: int = 0
    stopped: bool = False
    """True when ``stop`` ended the run before the events ran out."""

    def as_dict(self) -> dict[str, Any]:
        return self.tally.as_dict() | {"failed": self.failed, "stopped": self.stopped}


Progress = Callable[[PublishReport, float], None]
"""Called now and then with the report so far and the clock's time."""


def publish_realtime(
    client: redis.Redis,
    clock: Clock,
    events: Iterable[UserEvent],
    *,
    stop: threading.Event,
    channel_prefix: str = "",
    on_progress: Progress | None = None,
    progress_every_s: float = 0.25,
) -> PublishReport:
    """Publish ``events`` (sorted by ``ts``) each at its time on ``clock``; see the module doc."""
    report = PublishReport()
    last_progress = time.monotonic()

    def progress() -> None:
        nonlocal last_progress
        if on_progress is not None and time.monotonic() - last_progress >= progress_every_s:
            last_progress = time.monotonic()
            on_progress(report, clock.now())

    for event in events:
        while (ahead := event.ts - clock.now()) > 0:
            if stop.wait(min(clock.wall_delay(ahead), progress_every_s)):
                break
            progress()
        if stop.is_set():
            report.stopped = True
            break
        published = event
        if isinstance(event, UserActivity):
            published = replace(event, timestamp=math.floor(clock.now()))
        try:
            client.publish(channel_prefix + event.channel.value, encode_payload(published))
        except redis.RedisError as e:
            report.failed += 1
            if report.failed == 1 or report.failed % 100 == 0:
                log.warning("publish failed (%d so far): %s", report.failed, e)
        else:
            report.tally.add(published)
        progress()
    if on_progress is not None:
        on_progress(report, clock.now())
    return report


def run_realtime(
    client: redis.Redis,
    clock: Clock,
    workload: str,
    *,
    seed: int,
    stop: threading.Event,
    hours: float = math.inf,
    users: int | None = None,
    channel_prefix: str = "",
    on_progress: Progress | None = None,
    start: float | None = None,
) -> PublishReport:
    """Generate ``workload`` from ``start`` (default ``clock.now()``) for ``hours`` (default:
    until ``stop``) and publish it in real time with :func:`publish_realtime`.

    A ``start`` in the past continues a history: the events before now are skipped (they
    are what the history already holds) and the users carry on from their state at now.
    """
    now = clock.now()
    begin = now if start is None else start
    events: Iterable[UserEvent] = generate(
        workload, hours=hours, seed=seed, start=begin, users=users
    )
    if begin < now:
        events = (event for event in events if event.ts >= now)
    return publish_realtime(
        client, clock, events, stop=stop, channel_prefix=channel_prefix, on_progress=on_progress
    )
