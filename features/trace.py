"""Trace files: one JSON event per line, ``{"ts", "channel", "payload"}``, sorted by ``ts``.

Also the Parquet form of the same events (flat, typed columns) for analysis tools.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson

from features.events import (
    DEFAULT_LIMITS,
    BadEvent,
    Channel,
    Event,
    Limits,
    NodeStatus,
    NodeStatusChanged,
    Rejection,
    UserActivity,
    UserConnect,
    UserDisconnect,
    decode_json,
    parse_trace_record,
    trace_record,
)

if TYPE_CHECKING:
    import pyarrow as pa

MAX_LINE_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class RejectedLine:
    """A line of a trace file that is not an event, with where and why."""

    line_no: int
    raw: str
    error: BadEvent


def encode_line(event: Event) -> str:
    return orjson.dumps(trace_record(event)).decode()


def write_jsonl(path: Path, events: Iterable[Event]) -> int:
    """Write ``events`` as a trace file; returns how many were written."""
    count = 0
    with path.open("w", encoding="utf-8") as out:
        for event in events:
            out.write(encode_line(event))
            out.write("\n")
            count += 1
    return count


def read_jsonl(
    path: Path, *, now: float, limits: Limits = DEFAULT_LIMITS
) -> Iterator[Event | RejectedLine]:
    """Every line of a trace file, as an event or as a :class:`RejectedLine`."""
    with path.open("rb") as source:
        yield from parse_lines(source, now=now, limits=limits)


def parse_lines(
    source: IO[bytes], *, now: float, limits: Limits = DEFAULT_LIMITS
) -> Iterator[Event | RejectedLine]:
    for line_no, raw in enumerate(source, start=1):
        try:
            if len(raw) > MAX_LINE_BYTES:
                raise BadEvent(Rejection.TOO_LARGE, f"line of {len(raw)} bytes > {MAX_LINE_BYTES}")
            yield parse_trace_record(decode_json(raw), now=now, limits=limits)
        except BadEvent as e:
            if not raw.strip():
                continue  # blank lines are allowed
            text = raw[:MAX_LINE_BYTES].decode("utf-8", errors="replace").rstrip("\n")
            yield RejectedLine(line_no, text, e)


PARQUET_COLUMNS = ("ts", "channel", "user_id", "node_id", "status", "timestamp")


def parquet_schema() -> pa.Schema:
    """The columns of a Parquet trace (:data:`PARQUET_COLUMNS`) and their types."""
    import pyarrow as pa

    return pa.schema(
        [
            ("ts", pa.float64()),
            ("channel", pa.string()),
            ("user_id", pa.string()),
            ("node_id", pa.string()),
            ("status", pa.string()),
            ("timestamp", pa.int64()),
        ]
    )


def events_table(events: Iterable[Event]) -> pa.Table:
    """``events`` as flat typed columns (:func:`parquet_schema`), in their order."""
    import pyarrow as pa

    columns: dict[str, list[Any]] = {name: [] for name in PARQUET_COLUMNS}
    for event in events:
        row = _flat(event)
        for name in PARQUET_COLUMNS:
            columns[name].append(row.get(name))
    return pa.table(columns, schema=parquet_schema())


def table_events(table: pa.Table | pa.RecordBatch) -> Iterator[Event]:
    """The events of a table (or record batch) of :func:`events_table`'s layout, in its
    order (trusted: no validation)."""
    for row in table.select(list(PARQUET_COLUMNS)).to_pylist():
        yield _from_flat(row)


def write_parquet(path: Path, events: Iterable[Event]) -> int:
    """Write ``events`` as flat typed columns: ts, channel, user_id, node_id, status, timestamp."""
    import pyarrow.parquet as pq

    table = events_table(events)
    pq.write_table(table, path)
    return int(table.num_rows)


def parquet_rows(path: Path) -> int:
    """How many events a Parquet trace holds (from its footer, without reading them)."""
    import pyarrow.parquet as pq

    return int(pq.read_metadata(path).num_rows)


def read_parquet(path: Path) -> Iterator[Event]:
    """Events from a file written by :func:`write_parquet` (trusted: no validation)."""
    import pyarrow.parquet as pq

    yield from table_events(pq.read_table(path, columns=list(PARQUET_COLUMNS)))


def _flat(event: Event) -> dict[str, Any]:
    row: dict[str, Any] = {"ts": event.ts, "channel": event.channel.value}
    match event:
        case UserActivity(user_id=user_id, timestamp=stamp):
            row["user_id"] = user_id
            row["timestamp"] = stamp
        case UserConnect(user_id=user_id) | UserDisconnect(user_id=user_id):
            row["user_id"] = user_id
        case NodeStatusChanged(node_id=node_id, status=status):
            row["node_id"] = node_id
            row["status"] = status.value
    return row


def _from_flat(row: dict[str, Any]) -> Event:
    channel = Channel(row["channel"])
    ts = float(row["ts"])
    if channel is Channel.ACTIVITY:
        return UserActivity(ts, row["user_id"], row["timestamp"])
    if channel is Channel.CONNECT:
        return UserConnect(ts, row["user_id"])
    if channel is Channel.DISCONNECT:
        return UserDisconnect(ts, row["user_id"])
    return NodeStatusChanged(ts, row["node_id"], NodeStatus(row["status"]))
