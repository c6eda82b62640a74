"""Moving events between trace files and the event log (import and export)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from features.eventlog import DeadLetter, EventLog, PipelinedAppender, batched
from features.events import Event
from features.partitioned import Manifest, read_partitioned, write_partitioned
from features.trace import (
    RejectedLine,
    parse_lines,
    read_parquet,
    write_jsonl,
    write_parquet,
)

Progress = Callable[[int], None]
"""Called with how much more work is done (bytes for the import of a JSON-lines trace,
events for the import of Parquet and for export)."""


class UnsupportedFormat(ValueError):
    """A trace file name whose extension is neither .jsonl nor .parquet."""


class TraceFormat(StrEnum):
    JSONL = "jsonl"
    """One JSON event per line (``features.trace``)."""
    PARQUET = "parquet"
    """Flat typed columns (``features.trace.parquet_schema``)."""


@dataclass(slots=True)
class ImportReport:
    imported: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    first_ts: float | None = None
    last_ts: float | None = None

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def as_dict(self) -> dict[str, object]:
        return {
            "imported": self.imported,
            "rejected": self.rejected_total,
            "rejected_by_reason": dict(self.rejected),
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
        }


def trace_format(path: Path) -> TraceFormat:
    """The format of a trace file, by its extension."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return TraceFormat.JSONL
    if suffix in (".parquet", ".pq"):
        return TraceFormat.PARQUET
    raise UnsupportedFormat(f"{path.name}: use a .jsonl or .parquet file")


def import_trace(
    log: EventLog,
    path: Path,
    *,
    now: float,
    batch_size: int = 2000,
    progress: Progress | None = None,
) -> ImportReport:
    """Append every event of a trace file to the log, in file order; or of a partitioned
    export's directory (``features.partitioned``), merged back in time order.

    Lines that are not events are dead-lettered (source ``trace:<file>:<line>``) and the
    import goes on; the report counts both.
    """
    report = ImportReport()
    with PipelinedAppender(log) as appender:
        if path.is_dir():
            _import_events(appender, read_partitioned(path), report, batch_size, progress)
        elif trace_format(path) is TraceFormat.PARQUET:
            _import_events(appender, read_parquet(path), report, batch_size, progress)
        else:
            _import_lines(
                appender, path, now=now, report=report, batch_size=batch_size, progress=progress
            )
    return report


def _import_lines(
    appender: PipelinedAppender,
    path: Path,
    *,
    now: float,
    report: ImportReport,
    batch_size: int,
    progress: Progress | None,
) -> None:
    batch: list[Event] = []
    letters: list[DeadLetter] = []
    with path.open("rb") as source:
        position = 0
        for item in parse_lines(source, now=now, limits=appender.log.limits):
            if isinstance(item, RejectedLine):
                report.rejected[item.error.reason.value] += 1
                letters.append(
                    DeadLetter(
                        item.error.reason,
                        item.error.detail,
                        f"trace:{path.name}:{item.line_no}",
                        item.raw,
                        now,
                    )
                )
            else:
                _note(report, item)
                batch.append(item)
            if len(batch) >= batch_size or len(letters) >= batch_size:
                batch, letters = _flush(appender, batch, letters, report)
                if progress is not None:
                    progress(source.tell() - position)
                    position = source.tell()
        _flush(appender, batch, letters, report)
        if progress is not None:
            progress(source.tell() - position)


def _import_events(
    appender: PipelinedAppender,
    events: Iterator[Event],
    report: ImportReport,
    batch_size: int,
    progress: Progress | None,
) -> None:
    for batch in batched(events, batch_size):
        for event in batch:
            _note(report, event)
        _flush(appender, batch, [], report)
        if progress is not None:
            progress(len(batch))


def _note(report: ImportReport, event: Event) -> None:
    if report.first_ts is None:
        report.first_ts = event.ts
    report.last_ts = event.ts


def _flush(
    appender: PipelinedAppender,
    batch: list[Event],
    letters: list[DeadLetter],
    report: ImportReport,
) -> tuple[list[Event], list[DeadLetter]]:
    """Hand the batch to the appender (which keeps it) and return fresh lists."""
    appender.submit(batch)
    appender.log.dead_letter(letters)
    report.imported += len(batch)
    return [], []


def logged_events(
    log: EventLog,
    since: float | None = None,
    until: float | None = None,
    *,
    progress: Progress | None = None,
) -> Iterator[Event]:
    """The events of the log in ``[since, until)``, in log order."""
    for batch in log.read(since, until):
        yield from batch.events
        if progress is not None:
            progress(len(batch.events) + len(batch.rejected))


def export_trace(
    log: EventLog,
    path: Path,
    since: float | None = None,
    until: float | None = None,
    *,
    progress: Progress | None = None,
) -> int:
    """Write the log's events in ``[since, until)`` to a .jsonl or .parquet file."""
    events = logged_events(log, since, until, progress=progress)
    if trace_format(path) is TraceFormat.PARQUET:
        return write_parquet(path, events)
    return write_jsonl(path, events)


def export_partitioned(
    log: EventLog,
    directory: Path,
    partitions: int,
    since: float | None = None,
    until: float | None = None,
    *,
    exported_at: float,
    progress: Progress | None = None,
) -> Manifest:
    """Write the log's events in ``[since, until)`` to ``directory``, partitioned by user
    (``features.partitioned``: the layout, and what is refused)."""
    events = logged_events(log, since, until, progress=progress)
    return write_partitioned(
        directory, events, partitions, since=since, until=until, exported_at=exported_at
    )
