"""The event log: one Redis Stream holding every event with its time.

Entry format (the contract for anyone writing to the stream directly)::

    XADD <prefix>events * ts <unix seconds, decimal> channel <channel name> payload <JSON>

``ts`` may be left out: the entry is then stamped with the payload's ``timestamp`` or, if it
has none, with the time in the entry ID (arrival).

Our own writer derives entry IDs from event time: ``max(ts in ms, last ID)`` plus a sequence
number, assigned atomically server-side in batches (a Lua script). So the log is ordered as
appended, an event's ID is never earlier than its ``ts``, and a time range maps onto an ID
range. Retention trims by length or by age, measured against the newest event's time (so an
imported old history is not wiped by the wall clock).

Bad messages never raise out of a consumer: they go to the dead-letter stream
``<prefix>events:dead`` with their reason, and are counted in ``<prefix>events:stats``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final

import redis
from redis.connection import Connection

from features.events import (
    CHANNELS_BY_BYTES,
    DEFAULT_LIMITS,
    BadEvent,
    Event,
    Limits,
    Rejection,
    decode_payload,
    encode_payload,
    event_from_payload,
    parse_channel,
)

StreamEntries = list[tuple[bytes, dict[bytes, bytes]]]
"""What XRANGE answers on a client that does not decode responses."""
RawEntries = list[tuple[bytes, list[bytes]]]
"""What XRANGE answers without redis-py's dict conversion (see ``EventLog.raw_client``)."""

DEAD_LETTER_MAX_LEN: Final = 100_000
DEAD_LETTER_RAW_CHARS: Final = 2048

_APPEND_SCRIPT: Final = """
local stream = KEYS[1]
local stats = KEYS[2]
local max_len = tonumber(ARGV[1])
local max_age_ms = tonumber(ARGV[2])
local last_ms, last_seq = -1, 0
if redis.call('EXISTS', stream) == 1 then
  local info = redis.call('XINFO', 'STREAM', stream)
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then
      local id = info[i + 1]
      local dash = string.find(id, '-', 1, true)
      last_ms = tonumber(string.sub(id, 1, dash - 1))
      last_seq = tonumber(string.sub(id, dash + 1))
      break
    end
  end
end
local max_lag = 0
local id = ''
local n = 0
for i = 3, #ARGV, 4 do
  local ms = tonumber(ARGV[i])
  if ms > last_ms and ms > 0 then
    last_ms = ms
    last_seq = 0
    id = ARGV[i] .. '-0'
  else
    if last_ms - ms > max_lag then max_lag = last_ms - ms end
    if ms > last_ms then last_ms = ms; last_seq = 0 end
    last_seq = last_seq + 1
    id = string.format('%.0f-%.0f', last_ms, last_seq)
  end
  redis.call('XADD', stream, id, 'ts', ARGV[i + 1], 'channel', ARGV[i + 2], 'payload', ARGV[i + 3])
  n = n + 1
end
if n > 0 then
  redis.call('HINCRBY', stats, 'appended', n)
  if max_lag > tonumber(redis.call('HGET', stats, 'max_lag_ms') or '0') then
    redis.call('HSET', stats, 'max_lag_ms', string.format('%.0f', max_lag))
  end
  if max_len > 0 then
    redis.call('XTRIM', stream, 'MAXLEN', '~', max_len)
  end
  if max_age_ms > 0 and last_ms - max_age_ms > 0 then
    redis.call('XTRIM', stream, 'MINID', '~', string.format('%.0f', last_ms - max_age_ms))
  end
end
return id
"""


@dataclass(frozen=True, slots=True)
class LogKeys:
    """Names of the Redis keys of one event log."""

    prefix: str = "pp:"

    @property
    def stream(self) -> str:
        return f"{self.prefix}events"

    @property
    def dead(self) -> str:
        return f"{self.prefix}events:dead"

    @property
    def stats(self) -> str:
        return f"{self.prefix}events:stats"


@dataclass(frozen=True, slots=True)
class Retention:
    """Keep at most ``max_len`` entries and/or ``max_age_s`` seconds of event time."""

    max_len: int | None = None
    max_age_s: float | None = None


@dataclass(frozen=True, slots=True)
class BadEntry:
    """A stream entry (written by someone else) that is not a valid event."""

    entry_id: str
    error: BadEvent


@dataclass(slots=True)
class ReadBatch:
    """Events read in one round trip; ``ids[i]`` is the entry ID of ``events[i]``."""

    events: list[Event] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    rejected: list[BadEntry] = field(default_factory=list)
    last_id: str | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message refused at the door: why, where it came from, and what it was."""

    reason: Rejection
    detail: str
    source: str
    raw: str
    at: float


class EventLog:
    """Appends to and reads from the event stream of one key prefix."""

    def __init__(
        self,
        client: redis.Redis,
        keys: LogKeys | None = None,
        *,
        retention: Retention | None = None,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self.client = client
        self.keys = keys or LogKeys()
        self.retention = retention or Retention()
        self.limits = limits
        self._append_script = client.register_script(_APPEND_SCRIPT)
        # Same connections, but entries stay flat lists: no per-entry dict on the hot path.
        self.raw_client = redis.Redis(connection_pool=client.connection_pool)
        for command in ("XRANGE", "XREVRANGE", "XREADGROUP", "XREAD", "XAUTOCLAIM"):
            self.raw_client.set_response_callback(command, _as_is)

    # -- writing -------------------------------------------------------------------------

    def append(self, event: Event) -> str:
        """Append one event; returns its entry ID."""
        return self.append_batch([event])

    def append_batch(self, events: Sequence[Event]) -> str:
        """Append events atomically, in order; returns the last entry ID ('' if none)."""
        if not events:
            return ""
        return self.send_batch(self.encode_batch(events))

    def encode_batch(self, events: Sequence[Event]) -> list[str | int]:
        """The arguments of one append (CPU only: may run apart from :meth:`send_batch`)."""
        argv: list[str | int] = [
            self.retention.max_len or 0,
            int((self.retention.max_age_s or 0) * 1000),
        ]
        for event in events:
            argv += (
                int(event.ts * 1000),
                repr(event.ts),
                event.channel.value,
                encode_payload(event),
            )
        return argv

    def send_batch(self, argv: list[str | int]) -> str:
        """Run one append encoded by :meth:`encode_batch`; returns the last entry ID."""
        last = self._append_script(keys=[self.keys.stream, self.keys.stats], args=argv)
        return last.decode() if isinstance(last, bytes) else str(last)

    def append_many(self, events: Iterable[Event], *, batch_size: int = 2000) -> int:
        """Append any number of events in order, in batches; returns how many."""
        count = 0
        with PipelinedAppender(self) as appender:
            for batch in batched(events, batch_size):
                appender.submit(batch)
                count += len(batch)
        return count

    def dead_letter(self, letters: Sequence[DeadLetter]) -> None:
        """Record refused messages in the dead-letter stream and count them by reason."""
        if not letters:
            return
        pipe = self.client.pipeline(transaction=False)
        for letter in letters:
            pipe.xadd(
                self.keys.dead,
                {
                    "reason": letter.reason.value,
                    "detail": letter.detail[:512],
                    "source": letter.source[:256],
                    "raw": letter.raw[:DEAD_LETTER_RAW_CHARS],
                    "at": repr(letter.at),
                },
                maxlen=DEAD_LETTER_MAX_LEN,
                approximate=True,
            )
            pipe.hincrby(self.keys.stats, f"dead:{letter.reason.value}", 1)
        pipe.execute()

    # -- reading -------------------------------------------------------------------------

    def length(self) -> int:
        return int(self.client.xlen(self.keys.stream))

    def stats(self) -> dict[str, int]:
        """Counters: ``appended``, ``max_lag_ms`` and ``dead:<reason>`` per reason."""
        raw = self.client.hgetall(self.keys.stats)
        return {_text(k): int(v) for k, v in raw.items()}

    def dead_letters(self, count: int = 100) -> list[DeadLetter]:
        """The most recent dead letters, newest first."""
        entries: StreamEntries = self.client.xrevrange(  # type: ignore[assignment]
            self.keys.dead, count=count
        )
        letters = []
        for _entry_id, fields in entries:
            f = {_text(k): _text(v) for k, v in fields.items()}
            letters.append(
                DeadLetter(
                    Rejection(f["reason"]), f["detail"], f["source"], f["raw"], float(f["at"])
                )
            )
        return letters

    def read(
        self,
        since: float | None = None,
        until: float | None = None,
        *,
        batch_size: int = 10_000,
        start_id: str | None = None,
    ) -> Iterator[ReadBatch]:
        """The events with ``since <= ts < until``, in log order, in batches.

        Entries that are not valid events (only possible when someone else wrote them)
        come back in ``rejected``; nothing is silently dropped.
        """
        start = start_id or "-"
        if start_id is None and since is not None:
            start = f"{max(0, int((since - self.limits.max_future_skew_s) * 1000))}-0"
        while True:
            entries: RawEntries = self.raw_client.xrange(  # type: ignore[assignment]
                self.keys.stream, min=start, max="+", count=batch_size
            )
            if not entries:
                return
            batch = ReadBatch()
            events, ids, decode = batch.events, batch.ids, self.decode_entry
            low = -math.inf if since is None else since
            high = math.inf if until is None else until
            for raw_id, flat in entries:
                entry_id = raw_id.decode()
                try:
                    event = decode(entry_id, flat)
                except BadEvent as e:
                    batch.rejected.append(BadEntry(entry_id, e))
                    continue
                if low <= event.ts < high:
                    events.append(event)
                    ids.append(entry_id)
            batch.last_id = entries[-1][0].decode()
            yield batch
            if len(entries) < batch_size:
                return
            start = f"({batch.last_id}"

    def decode_entry(self, entry_id: str, flat: Sequence[bytes]) -> Event:
        """Validate one stream entry given as its flat field list (module docstring)."""
        raw_ts: bytes | None
        if len(flat) == 6 and flat[0] == b"ts" and flat[2] == b"channel" and flat[4] == b"payload":
            raw_ts, raw_channel, payload = flat[1], flat[3], flat[5]  # as our writer lays it out
        else:
            fields = dict(zip(flat[0::2], flat[1::2], strict=False))
            raw_ts = fields.get(b"ts")
            for name in (b"channel", b"payload"):
                if name not in fields:
                    detail = f"stream entry has no {name.decode()!r} field"
                    raise BadEvent(Rejection.MISSING_FIELD, detail)
            raw_channel, payload = fields[b"channel"], fields[b"payload"]
        channel = CHANNELS_BY_BYTES.get(raw_channel)
        if channel is None:
            channel = parse_channel(raw_channel.decode("utf-8", errors="replace"))
        # The ID's time is the arrival: Redis' clock for `XADD *`, ours never before `ts`.
        arrival = int(entry_id.partition("-")[0]) / 1000
        if raw_ts is None:
            return event_from_payload(
                channel, decode_payload(payload, self.limits), now=arrival, limits=self.limits
            )
        try:
            ts = float(raw_ts)
        except ValueError as e:
            raise BadEvent(Rejection.BAD_TIMESTAMP, f"ts={raw_ts[:32]!r}") from e
        return event_from_payload(
            channel,
            decode_payload(payload, self.limits),
            now=arrival + 0.001,  # ms IDs floor the time
            ts=ts,
            limits=self.limits,
        )


class PipelinedAppender:
    """Appends batches strictly in order, one in flight while the caller prepares the next.

    Each :meth:`submit` sends its batch and returns without waiting for the reply, which
    is read at the next submit or at :meth:`close`. So Redis stores batch k while the
    caller parses and encodes batch k+1: an import costs about max(parse, store) per event
    instead of their sum, on one thread. A failed batch is raised by the next
    :meth:`submit` or by :meth:`close`; nothing is sent after it, so the log holds a
    prefix of what was submitted.
    """

    def __init__(self, log: EventLog) -> None:
        self.log = log
        self._pool = log.client.connection_pool
        self._connection: Connection | None = None
        self._in_flight = 0
        self._sha = ""

    def submit(self, events: Sequence[Event]) -> None:
        if not events:
            return
        argv = self.log.encode_batch(events)
        self._collect()
        if self._connection is None:
            self._sha = str(self.log.client.script_load(_APPEND_SCRIPT))
            self._connection = self._pool.get_connection()
        keys = (self.log.keys.stream, self.log.keys.stats)
        self._connection.send_command("EVALSHA", self._sha, len(keys), *keys, *argv)  # type: ignore[no-untyped-call]
        self._in_flight = len(events)

    def close(self) -> None:
        """Wait until everything submitted is stored; raise if a batch failed."""
        try:
            self._collect()
        finally:
            if self._connection is not None:
                self._pool.release(self._connection)
                self._connection = None

    def __enter__(self) -> PipelinedAppender:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _collect(self) -> None:
        if not self._in_flight or self._connection is None:
            return
        self._in_flight = 0
        try:
            reply = self._connection.read_response()
        except redis.RedisError as e:
            raise AppendError(f"appending to {self.log.keys.stream} failed: {e}") from e
        if isinstance(reply, redis.ResponseError):
            raise AppendError(f"appending to {self.log.keys.stream} failed: {reply}")


class AppendError(RuntimeError):
    """A pipelined append failed; what was submitted after it was not stored."""


def batched(items: Iterable[Event], size: int) -> Iterator[list[Event]]:
    batch: list[Event] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _as_is(response: object, **options: object) -> object:
    return response


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value
