"""Start-up of the live shell: the engine restored from its saved state and the event log.

The state saved in Redis (``service.state_store``) holds the engine (pool, calibration,
counters) and the watermark, the last event-log entry it reflects. The online features are
not saved: they are rebuilt by replaying the recent log up to the watermark. A service that
finds no state starts fresh at the end of the log. Then the consumer group is made sure of
and the entries a dead predecessor left pending are taken over; node requests that were in
flight at the last stop are failed (no task is left to receive their answer; a node one did
create is adopted from its status event or by reconciliation).

**A log behind the saved state.** Redis writes its append-only file to disk once a second
(``appendfsync everysec``): a machine that dies can come back with the log's last second
gone while the saved state (written later, or synced earlier) names a watermark past the
log's end. Kept, that watermark would hide the entries appended after the restart whose IDs
fall at or below it (the consumer skips them as applied). So a watermark past the log's last
entry falls back to that entry, said in the log (``Restored.lost_tail``); the events of the
lost tail stay applied in the engine, and reconciliation corrects the pool.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from features.eventlog import EventLog
from features.online import OnlineFeatures
from service.consumer import StreamConsumer, entry_key
from service.engine import Engine
from service.state_store import StateStore

log = logging.getLogger(__name__)

EngineFactory = Callable[[dict[str, Any] | None, OnlineFeatures], Engine]
"""Builds the engine from saved state (None: fresh) and the rebuilt features."""


@dataclass(frozen=True, slots=True)
class Restored:
    engine: Engine
    watermark: str | None
    fresh: bool
    """No saved state was found."""
    replayed: int
    """Events replayed into the features."""
    taken: int
    """Pending entries taken over from a dead consumer."""
    expired: list[str]
    """Tokens of the node requests that were in flight at the last stop, now failed."""
    lost_tail: str | None = None
    """The saved watermark when it lay past the log's last entry (replaced by that entry)."""


async def restore(
    *,
    store: StateStore,
    event_log: EventLog,
    consumer: StreamConsumer,
    engine_factory: EngineFactory,
    now: float,
    history_s: float,
) -> Restored:
    """The engine as the last stop left it (``history_s``: how much of the log to replay)."""
    saved = await asyncio.to_thread(store.load)
    if saved is None:
        watermark = await asyncio.to_thread(last_entry_id, event_log)
    else:
        watermark = saved.watermark
    lost_tail = None
    if watermark is not None and saved is not None:
        last = await asyncio.to_thread(last_entry_id, event_log)
        if last is None or entry_key(last) < entry_key(watermark):
            log.warning(
                "the saved watermark %s is past the event log's last entry %s: the log lost "
                "its tail (Redis came back from an append-only file behind the saved state); "
                "continuing from the log's last entry",
                watermark,
                last,
            )
            lost_tail, watermark = watermark, last
    features = OnlineFeatures()
    replayed = await asyncio.to_thread(replay, event_log, features, watermark, now - history_s)
    engine = engine_factory(None if saved is None else saved.engine, features)
    await asyncio.to_thread(consumer.ensure_group, "$" if saved is None else "0")
    taken = await asyncio.to_thread(consumer.take_over)
    expired = engine.expire_requests(now)
    for token in expired:
        log.warning("node request %s was in flight at the last stop; counting it failed", token)
    return Restored(engine, watermark, saved is None, replayed, taken, expired, lost_tail)


def last_entry_id(event_log: EventLog) -> str | None:
    entries: Any = event_log.client.xrevrange(event_log.keys.stream, count=1)
    if not entries:
        return None
    entry_id = entries[0][0]
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


def replay(
    event_log: EventLog, features: OnlineFeatures, watermark: str | None, since: float
) -> int:
    """Replay the log from ``since`` up to the watermark into ``features``; the count."""
    if watermark is None:
        return 0
    mark = entry_key(watermark)
    replayed = 0
    for batch in event_log.read(since=since):
        for entry_id, event in zip(batch.ids, batch.events, strict=True):
            if entry_key(entry_id) > mark:
                return replayed
            features.update(event)
            replayed += 1
    return replayed
