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

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final

import redis

from features.events import (
    DEFAULT_LIMITS,
    BadEvent,
    Event,
    Limits,
    Rejection,
    encode_payload,
    parse_message,
)

StreamEntries = list[tuple[bytes, dict[bytes, bytes]]]
"""What XRANGE answers on a client that does not decode responses."""

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
  if ms > last_ms then
    last_ms = ms
    last_seq = 0
  else
    if last_ms - ms > max_lag then max_lag = last_ms - ms end
    last_seq = last_seq + 1
  end
  if last_ms == 0 and last_seq == 0 then last_seq = 1 end
  id = string.format('%.0f-%.0f', last_ms, last_seq)
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
class LoggedEvent:
    entry_id: str
    event: Event


@dataclass(frozen=True, slots=True)
class BadEntry:
    """A stream entry (written by someone else) that is not a valid event."""

    entry_id: str
    error: BadEvent


@dataclass(slots=True)
class ReadBatch:
    events: list[LoggedEvent] = field(default_factory=list)
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

    # -- writing -------------------------------------------------------------------------

    def append(self, event: Event) -> str:
        """Append one event; returns its entry ID."""
        return self.append_batch([event])

    def append_batch(self, events: Sequence[Event]) -> str:
        """Append events atomically, in order; returns the last entry ID ('' if none)."""
        if not events:
            return ""
        argv: list[str | int] = [
            self.retention.max_len or 0,
            int((self.retention.max_age_s or 0) * 1000),
        ]
        for event in events:
            argv.append(int(event.ts * 1000))
            argv.append(repr(event.ts))
            argv.append(event.channel.value)
            argv.append(encode_payload(event))
        last = self._append_script(keys=[self.keys.stream, self.keys.stats], args=argv)
        return last.decode() if isinstance(last, bytes) else str(last)

    def append_many(self, events: Iterable[Event], *, batch_size: int = 2000) -> int:
        """Append any number of events in batches; returns how many were appended."""
        batch: list[Event] = []
        count = 0
        for event in events:
            batch.append(event)
            if len(batch) >= batch_size:
                self.append_batch(batch)
                count += len(batch)
                batch.clear()
        if batch:
            self.append_batch(batch)
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
            entries: StreamEntries = self.client.xrange(  # type: ignore[assignment]
                self.keys.stream, min=start, max="+", count=batch_size
            )
            if not entries:
                return
            batch = ReadBatch()
            for raw_id, fields in entries:
                entry_id = _text(raw_id)
                try:
                    event = self.decode_entry(entry_id, fields)
                except BadEvent as e:
                    batch.rejected.append(BadEntry(entry_id, e))
                    continue
                if (since is None or event.ts >= since) and (until is None or event.ts < until):
                    batch.events.append(LoggedEvent(entry_id, event))
            batch.last_id = _text(entries[-1][0])
            yield batch
            if len(entries) < batch_size:
                return
            start = f"({batch.last_id}"

    def decode_entry(self, entry_id: str, fields: dict[bytes, bytes]) -> Event:
        """Validate one stream entry (see the module docstring for its format)."""
        channel = fields.get(b"channel")
        payload = fields.get(b"payload")
        if channel is None or payload is None:
            missing = "channel" if channel is None else "payload"
            raise BadEvent(Rejection.MISSING_FIELD, f"stream entry has no {missing!r} field")
        # Entry IDs are in ms and never earlier than the event: the ID time is "arrival".
        arrival = (int(entry_id.partition("-")[0]) + 1) / 1000
        raw_ts = fields.get(b"ts")
        ts: float | None = None
        if raw_ts is not None:
            try:
                ts = float(raw_ts)
            except ValueError as e:
                raise BadEvent(Rejection.BAD_TIMESTAMP, f"ts={raw_ts[:32]!r}") from e
        return parse_message(
            channel.decode("utf-8", errors="replace"),
            payload,
            now=arrival,
            ts=ts,
            limits=self.limits,
        )


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value
