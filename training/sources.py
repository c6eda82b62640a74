"""Where training events come from: the event log or a trace file, over a time range.

A range is ``[since, until)`` in unix seconds; either end may be open. A *window* of N
hours ends at ``until`` when given, else at the latest event (not at the wall clock:
imported traces and replays carry their own times), and starts N hours before.

:class:`EventSource` keeps the table of user events with what it was read from, for the
run's records (the dataset source and the event range logged to MLflow), and the node boots
(``booting`` to ``ready``) of the node events in the same range, from which a job given no
label horizon chooses one (``models.horizon``).

A window may bring a *warm-up*: ``warmup_hours`` more of the events before it, which only
give the features their history (``EventSource.rows_since``: a dataset's rows start at the
window). Without one, a user's features at the window's start are those of a user never
seen before (no last connect, no sessions), while the service computes them on everything
its event log holds: the same definitions on other histories, which the live drift monitor
shows as drift (``service.model_health``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from features.boot_times import boot_durations
from features.events import DEFAULT_LIMITS, Event, Limits, NodeStatus, NodeStatusChanged
from features.table import ACTIVITY, CONNECT, DISCONNECT, EventTable
from features.trace import PARQUET_COLUMNS, RejectedLine, parse_lines

if TYPE_CHECKING:
    import pyarrow as pa

    from features.eventlog import EventLog

Progress = Callable[[int], None]
"""Called with how much more was read (bytes of a trace, entries of the log)."""

PROGRESS_EVERY: Final = 20_000
_CHANNEL_OF_KIND: Final = {
    ACTIVITY: "user:activity",
    CONNECT: "user:connect",
    DISCONNECT: "user:disconnect",
}


class NoEvents(ValueError):
    """The range holds no user events."""


@dataclass(frozen=True, slots=True)
class PartSummary:
    """What the driver knows of one partition's user events held by a Dask worker."""

    events: int
    user_ids: tuple[str, ...]
    """The partition's users, in sorted order (its table's codes)."""
    first_ms: int
    last_ms: int
    """First and last event time (ms); 0 when the partition has no event."""


@dataclass(frozen=True, slots=True)
class WorkerEvents:
    """User events that stay on a Dask cluster: one table per user partition, each read
    and held by a worker (``training.export_on_workers``), and what the driver knows of
    them. Only ``training.distributed`` builds rows of them."""

    parts: tuple[Any, ...]
    """``distributed.Future`` of each partition's :class:`EventTable`."""
    summaries: tuple[PartSummary, ...]

    def __len__(self) -> int:
        return sum(s.events for s in self.summaries)

    @property
    def n_users(self) -> int:
        return sum(len(s.user_ids) for s in self.summaries)

    @property
    def user_ids(self) -> tuple[str, ...]:
        """Every partition's users, in sorted order: the codes of the whole table."""
        return tuple(sorted(u for s in self.summaries for u in s.user_ids))

    @property
    def last_ms(self) -> int:
        """The last user-event time (ms); 0 when empty."""
        return max((s.last_ms for s in self.summaries if s.events), default=0)

    @property
    def event_range(self) -> tuple[float, float]:
        """First and last user-event time (unix s); (0, 0) when empty."""
        if not len(self):
            return (0.0, 0.0)
        first = min(s.first_ms for s in self.summaries if s.events)
        return (first / 1000, self.last_ms / 1000)


@dataclass(frozen=True, slots=True)
class EventSource:
    """User events (and node boots) of one range of one source."""

    table: EventTable | WorkerEvents
    """The user events: a table in this process, or (a partitioned export read on a Dask
    cluster) the workers' partitions of it."""
    kind: str
    """``trace``, ``export`` (a partitioned export's directory) or ``log``."""
    location: str
    """The trace file's or the export's path, or the log's stream key."""
    since: float | None = None
    until: float | None = None
    rejected: int = 0
    """Lines or entries that were not valid events (left out)."""
    boots: tuple[float, ...] = ()
    """Seconds from ``booting`` to ``ready`` of each node that did both in the range, in
    log order (``features.boot_times.boot_durations``)."""
    rows_since: float | None = None
    """A dataset's rows start here; the events before it (from ``since``) are the warm-up,
    read for the features' history only. None: rows from the first event."""

    @property
    def path(self) -> Path | None:
        return Path(self.location) if self.kind in ("trace", "export") else None

    @property
    def event_range(self) -> tuple[float, float]:
        """First and last user-event time (unix s); (0, 0) when empty."""
        if isinstance(self.table, WorkerEvents):
            return self.table.event_range
        if not len(self.table):
            return (0.0, 0.0)
        return (float(self.table.ts_ms[0]) / 1000, float(self.table.ts_ms[-1]) / 1000)

    def local_table(self) -> EventTable:
        """The user events as a table in this process (ValueError when they are on a Dask
        cluster's workers: only a job on that cluster builds their rows)."""
        if isinstance(self.table, WorkerEvents):
            raise ValueError(
                f"the events of {self.location} are on the Dask workers that read them: "
                "train with that cluster"
            )
        return self.table

    def describe(self) -> dict[str, Any]:
        first, last = self.event_range
        users = (
            self.table.n_users
            if isinstance(self.table, WorkerEvents)
            else len(np.unique(self.table.user))
        )
        return {
            "kind": self.kind,
            "location": self.location,
            "since": self.since,
            "until": self.until,
            "rows_since": self.rows_since,
            "events": len(self.table),
            "users": users,
            "first_ts": first,
            "last_ts": last,
            "rejected": self.rejected,
            "boots": len(self.boots),
        }


def with_warmup(since: float | None, warmup_hours: float) -> float | None:
    """Where to start reading for a range starting at ``since`` with ``warmup_hours`` of
    warm-up before it."""
    if not (warmup_hours >= 0 and math.isfinite(warmup_hours)):
        raise ValueError(f"the warm-up must be a finite number of hours >= 0, not {warmup_hours}")
    return None if since is None else since - warmup_hours * 3600.0


def window_bounds(
    since: float | None, until: float | None, window_hours: float | None, latest: float | None
) -> tuple[float | None, float | None]:
    """``(since, until)`` with a window of ``window_hours`` ending at ``until`` or ``latest``.

    An explicit ``since`` wins over the window. ``latest`` is the newest event's time (the
    window then includes it).
    """
    if window_hours is None or since is not None:
        return since, until
    if not (window_hours > 0 and math.isfinite(window_hours)):
        raise ValueError(f"window must be a positive number of hours, not {window_hours}")
    end = until if until is not None else (None if latest is None else latest)
    if end is None:
        return None, until
    return end - window_hours * 3600.0, until


@dataclass(frozen=True, slots=True)
class ReadRange:
    """What a job reads of a source: its events from ``read_since`` (a warm-up's start)
    until ``until``, its rows from ``rows_since``."""

    read_since: float | None
    rows_since: float | None
    until: float | None

    @classmethod
    def of(
        cls,
        since: float | None,
        until: float | None,
        window_hours: float | None,
        warmup_hours: float,
        latest: float | None,
    ) -> ReadRange:
        """The range (or the window up to ``until`` or ``latest``, the newest event's time)
        with ``warmup_hours`` of warm-up before it."""
        rows_since, until = window_bounds(since, until, window_hours, latest)
        return cls(with_warmup(rows_since, warmup_hours), rows_since, until)

    def source(
        self,
        events: EventTable | WorkerEvents,
        kind: str,
        location: str,
        nodes: Iterable[Event],
        *,
        rejected: int = 0,
    ) -> EventSource:
        """The source of ``events`` read in this range, with the boots of the node events
        among ``nodes`` in the rows' range."""
        low = -math.inf if self.rows_since is None else self.rows_since
        high = math.inf if self.until is None else self.until
        return EventSource(
            events,
            kind,
            location,
            self.read_since,
            self.until,
            rejected=rejected,
            boots=tuple(boot_durations(e for e in nodes if low <= e.ts < high)),
            rows_since=self.rows_since if self.read_since != self.rows_since else None,
        )


def from_trace(
    path: Path,
    *,
    since: float | None = None,
    until: float | None = None,
    window_hours: float | None = None,
    warmup_hours: float = 0.0,
    now: float,
    limits: Limits = DEFAULT_LIMITS,
    progress: Progress | None = None,
) -> EventSource:
    """User events (and node boots) of a ``.jsonl`` or ``.parquet`` trace, or of the
    directory of a partitioned export (``features.partitioned``: every partition read here),
    in the range (or window), with ``warmup_hours`` of events before it for the features'
    history."""
    from features.partitioned import export_files
    from features.transfer import trace_format

    kind, rejected = ("export" if path.is_dir() else "trace"), 0
    if kind == "export" or trace_format(path) == "parquet":
        files = export_files(path) if kind == "export" else [path]
        table, nodes = read_parquet_events(files)
        if progress is not None:
            progress(sum(file.stat().st_size for file in files))
    else:
        table, nodes, rejected = _read_jsonl(path, now=now, limits=limits, progress=progress)
    latest = float(table.ts_ms[-1]) / 1000 if len(table) else None
    read = ReadRange.of(since, until, window_hours, warmup_hours, latest)
    events = within(table, read.read_since, read.until)
    return read.source(events, kind, str(path), nodes, rejected=rejected)


def from_log(
    log: EventLog,
    *,
    since: float | None = None,
    until: float | None = None,
    window_hours: float | None = None,
    warmup_hours: float = 0.0,
    progress: Progress | None = None,
) -> EventSource:
    """User events (and node boots) of the event log in the range (or the window up to its
    latest event), with ``warmup_hours`` of events before it for the features' history."""
    read = ReadRange.of(since, until, window_hours, warmup_hours, latest_event_time(log))
    events: list[Event] = []
    rejected = 0
    for batch in log.read(read.read_since, read.until):
        events.extend(batch.events)
        rejected += len(batch.rejected)
        if progress is not None:
            progress(len(batch.events) + len(batch.rejected))
    table = EventTable.from_events(events)
    return read.source(table, "log", log.keys.stream, events, rejected=rejected)


def latest_event_time(log: EventLog) -> float | None:
    """Time of the newest entry of the log (None when empty).

    Entry IDs are derived from event times and never earlier, so the last entry holds the
    newest event; its time is read from the entry (its ID's time if it does not decode).
    """
    from features.events import BadEvent

    entries: Any = log.client.xrevrange(log.keys.stream, count=1)
    if not entries:
        return None
    raw_id, fields = entries[0]
    entry_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
    flat = [x for pair in fields.items() for x in pair]
    try:
        return log.decode_entry(entry_id, flat).ts
    except BadEvent:
        return int(entry_id.partition("-")[0]) / 1000


def within(table: EventTable, since: float | None, until: float | None) -> EventTable:
    """The events of ``table`` with ``since <= ts < until``; users without events dropped."""
    if since is None and until is None:
        return table
    keep = np.ones(len(table), dtype=bool)
    if since is not None:
        keep &= table.ts_ms >= round(since * 1000)
    if until is not None:
        keep &= table.ts_ms < round(until * 1000)
    if keep.all():
        return table
    users, codes = np.unique(table.user[keep], return_inverse=True)
    return EventTable(
        table.ts_ms[keep],
        table.kind[keep],
        codes.astype(np.int32),
        tuple(table.user_ids[u] for u in users),
    )


def _read_jsonl(
    path: Path, *, now: float, limits: Limits, progress: Progress | None
) -> tuple[EventTable, list[NodeStatusChanged], int]:
    events: list[Event] = []
    rejected = 0
    reported = 0
    with path.open("rb") as source:
        for count, item in enumerate(parse_lines(source, now=now, limits=limits), start=1):
            if isinstance(item, RejectedLine):
                rejected += 1
            else:
                events.append(item)
            if progress is not None and count % PROGRESS_EVERY == 0:
                position = source.tell()
                progress(position - reported)
                reported = position
        if progress is not None:
            progress(source.tell() - reported)
    nodes = [e for e in events if isinstance(e, NodeStatusChanged)]
    return EventTable.from_events(events), nodes, rejected


def read_parquet_events(paths: list[Path]) -> tuple[EventTable, list[NodeStatusChanged]]:
    """The user events (a table) and the node events of Parquet traces with the same
    columns (one trace, or the parts of an export: a user's events in one file keep their
    order)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    columns = ["ts", "channel", "user_id", "node_id", "status"]
    flat = pa.concat_tables([pq.read_table(path, columns=columns) for path in paths])
    node_rows = flat.filter(pc.equal(flat.column("channel"), NodeStatusChanged.channel.value))
    nodes = [
        NodeStatusChanged(float(row["ts"]), str(row["node_id"]), NodeStatus(row["status"]))
        for row in node_rows.select(["ts", "node_id", "status"]).to_pylist()
    ]
    table = EventTable.from_arrow(flat.select(["ts", "channel", "user_id"]))
    del flat, node_rows
    # Arrow's allocator keeps what the read and the conversion freed (about 190 MB a
    # million events): give it back before the dataset is built.
    pa.default_memory_pool().release_unused()
    return table, nodes


def to_arrow(table: EventTable) -> pa.Table:
    """The user events of ``table`` in the Parquet trace layout (``features.trace``)."""
    import pyarrow as pa

    ts = table.ts_ms / 1000.0
    channels = np.array([_CHANNEL_OF_KIND[k] for k in range(3)], dtype=object)[table.kind]
    user_ids: Any = np.array(table.user_ids, dtype=object)[table.user] if len(table) else []
    stamp = np.where(table.kind == ACTIVITY, np.floor(ts), np.nan)
    return pa.table(
        {
            "ts": pa.array(ts, type=pa.float64()),
            "channel": pa.array(channels, type=pa.string()),
            "user_id": pa.array(user_ids, type=pa.string()),
            "node_id": pa.nulls(len(table), type=pa.string()),
            "status": pa.nulls(len(table), type=pa.string()),
            "timestamp": pa.array(stamp, type=pa.float64(), from_pandas=True).cast(pa.int64()),
        }
    ).select(list(PARQUET_COLUMNS))


def write_snapshot(table: EventTable, path: Path) -> Path:
    """Write ``table`` as a Parquet trace (importable, and readable by :func:`from_trace`)."""
    import pyarrow.parquet as pq

    pq.write_table(to_arrow(table), path)
    return path
