"""The live shell's reader: a Redis Streams consumer group over the event log.

Delivery is at-least-once: an entry is acknowledged only after it has been applied. A
consumer that died leaves entries pending in the group. A service starting up takes over
every pending entry of its group at once (:meth:`StreamConsumer.take_over`: one process
consumes a group, so they all belong to a dead predecessor) and reads them, in log order,
before anything new; while running it also claims those idle long enough
(``XAUTOCLAIM``). After a Redis error (the server restarted, a reply was lost) it reads its
own pending entries again first, so an entry delivered with a reply that never arrived is
not overtaken by newer ones. Nothing is lost. Applying must therefore be idempotent on
redelivery: the service keeps the ID of the last entry it applied (its *watermark*, saved
with its state) and skips entries at or below it. Entries that are not valid events are
dead-lettered and acknowledged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import redis

from features.eventlog import DeadLetter, EventLog
from features.events import BadEvent, Event

DEFAULT_CLAIM_IDLE_MS: Final = 30_000


def entry_key(entry_id: str) -> tuple[int, int]:
    """An entry ID as a comparable pair (ms, sequence)."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass(slots=True)
class Delivery:
    """Entries handed to this consumer in one read, decoded, in stream order."""

    events: list[Event] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    dead: list[str] = field(default_factory=list)
    """IDs of entries that were not events (dead-lettered; acknowledge them too)."""
    claimed: int = 0
    """How many of the entries were taken over from another consumer."""

    def __len__(self) -> int:
        return len(self.ids) + len(self.dead)

    @property
    def all_ids(self) -> list[str]:
        return [*self.ids, *self.dead]

    def after(self, watermark: str | None) -> tuple[list[Event], list[str]]:
        """The events not applied yet: those with an ID above ``watermark``."""
        if watermark is None:
            return self.events, self.ids
        mark = entry_key(watermark)
        kept = [i for i, entry_id in enumerate(self.ids) if entry_key(entry_id) > mark]
        return [self.events[i] for i in kept], [self.ids[i] for i in kept]


class StreamConsumer:
    """One member (``consumer``) of a consumer group (``group``) on the event stream."""

    def __init__(
        self,
        log: EventLog,
        group: str,
        consumer: str,
        *,
        count: int = 1000,
        claim_idle_ms: int = DEFAULT_CLAIM_IDLE_MS,
    ) -> None:
        self.log = log
        self.group = group
        self.consumer = consumer
        self.count = count
        self.claim_idle_ms = claim_idle_ms
        self._raw = log.raw_client  # entries as flat lists
        self._own_pending_done = False
        self._claim_cursor = "0-0"

    def ensure_group(self, start_id: str = "0") -> bool:
        """Create the group (and the stream) if missing; True when it was created.

        ``start_id`` is where a new group starts: ``0`` for the whole log, ``$`` for
        only what is appended from now on.
        """
        try:
            self.log.client.xgroup_create(self.log.keys.stream, self.group, start_id, mkstream=True)
        except redis.ResponseError as e:
            if "BUSYGROUP" in str(e):
                return False
            raise
        return True

    def take_over(self) -> int:
        """Make every pending entry of the group this consumer's (at start); how many.

        The next reads return them first, in log order, then new entries. Only right when
        this is the group's one live consumer (see the module doc).
        """
        cursor = "0-0"
        taken = 0
        while True:
            reply: Any = self._raw.xautoclaim(
                self.log.keys.stream,
                self.group,
                self.consumer,
                min_idle_time=0,
                start_id=cursor,
                count=self.count,
                justid=True,
            )
            taken += len(reply[1])
            cursor = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
            if cursor == "0-0":
                break
        self._own_pending_done = False
        return taken

    def read(self, block_ms: int | None = None) -> Delivery:
        """The next entries for this consumer: its own pending ones after a restart or a
        Redis error, then stale ones of dead consumers, then new ones (waiting up to
        ``block_ms``). Raises ``redis.RedisError`` when Redis cannot be reached."""
        try:
            return self._read(block_ms)
        except redis.RedisError:
            self._own_pending_done = False  # a reply may have been lost: pending first again
            raise

    def _read(self, block_ms: int | None) -> Delivery:
        if not self._own_pending_done:
            entries = self._read_group("0", block_ms=None)
            if entries:
                return self._decode(entries)
            self._own_pending_done = True
        claimed = self._claim_stale()
        if claimed:
            delivery = self._decode(claimed)
            delivery.claimed = len(claimed)
            return delivery
        entries = self._read_group(">", block_ms=block_ms)
        return self._decode(entries) if entries else Delivery()

    def ack(self, ids: Sequence[str]) -> int:
        if not ids:
            return 0
        return int(self.log.client.xack(self.log.keys.stream, self.group, *ids))

    def pending(self) -> int:
        """Entries delivered to the group's consumers and not yet acknowledged."""
        info: Any = self.log.client.xpending(self.log.keys.stream, self.group)
        return int(info["pending"])

    def lag(self) -> int | None:
        """Entries not yet delivered to the group (Redis 7+; None where unknown)."""
        groups: Any = self.log.client.xinfo_groups(self.log.keys.stream)
        for info in groups:
            name = info["name"]
            if (name.decode() if isinstance(name, bytes) else name) == self.group:
                lag = info.get("lag")
                return None if lag is None else int(lag)
        return None

    def _read_group(self, start: str, block_ms: int | None) -> list[tuple[bytes, list[bytes]]]:
        stream = self.log.keys.stream
        reply: Any = self._raw.xreadgroup(
            self.group, self.consumer, {stream: start}, count=self.count, block=block_ms
        )
        if not reply:
            return []
        # RESP3 answers a map {stream: entries}, RESP2 a list of [stream, entries].
        entries: list[tuple[bytes, list[bytes] | None]] = (
            next(iter(reply.values())) if isinstance(reply, dict) else reply[0][1]
        )
        # A pending entry deleted meanwhile (trimmed) comes back without fields: ack it.
        gone = [entry_id.decode() for entry_id, flat in entries if flat is None]
        if gone:
            self.ack(gone)
        return [(entry_id, flat) for entry_id, flat in entries if flat is not None]

    def _claim_stale(self) -> list[tuple[bytes, list[bytes]]]:
        reply: Any = self._raw.xautoclaim(
            self.log.keys.stream,
            self.group,
            self.consumer,
            min_idle_time=self.claim_idle_ms,
            start_id=self._claim_cursor,
            count=self.count,
        )
        cursor, entries = reply[0], reply[1]
        self._claim_cursor = cursor.decode() if isinstance(cursor, bytes) else str(cursor)
        return [(entry_id, flat) for entry_id, flat in entries if flat is not None]

    def _decode(self, entries: list[tuple[bytes, list[bytes]]]) -> Delivery:
        delivery = Delivery()
        letters: list[DeadLetter] = []
        for raw_id, flat in entries:
            entry_id = raw_id.decode()
            try:
                delivery.events.append(self.log.decode_entry(entry_id, flat))
                delivery.ids.append(entry_id)
            except BadEvent as e:
                delivery.dead.append(entry_id)
                raw = b" ".join(flat).decode("utf-8", errors="replace")
                at = entry_key(entry_id)[0] / 1000
                letters.append(DeadLetter(e.reason, e.detail, f"stream:{entry_id}", raw, at))
        self.log.dead_letter(letters)
        return delivery
