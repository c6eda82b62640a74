"""Moving events between trace files and the event log (import and export)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from features.eventlog import DeadLetter, EventLog
from features.events import Event
from features.trace import (
    RejectedLine,
    parse_lines,
    read_parquet,
    write_jsonl,
    write_parquet,
)

Progress = Callable[[int], None]
"""Called with how much more work is done (bytes for import, events for export)."""


class UnsupportedFormat(ValueError):
    """A trace file name whose extension is neither .jsonl nor .parquet."""


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


def trace_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    raise UnsupportedFormat(f"{path.name}: use a .jsonl or .parquet file")


def import_trace(
    log: EventLog,
    path: Path,
    *,
    now: float,
    batch_size: int = 2000,
    progress: Progress | None = None,
) -> ImportReport:
    """Append every event of a trace file to the log, in file order.

    Lines that are not events are dead-lettered (source ``trace:<file>:<line>``) and the
    import goes on; the report counts both.
    """
    report = ImportReport()
    if trace_format(path) == "parquet":
        return _import_events(log, read_parquet(path), report, batch_size, progress)
    batch: list[Event] = []
    letters: list[DeadLetter] = []
    with path.open("rb") as source:
        position = 0
        for item in parse_lines(source, now=now, limits=log.limits):
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
                _flush(log, batch, letters, report)
                if progress is not None:
                    progress(source.tell() - position)
                    position = source.tell()
        _flush(log, batch, letters, report)
        if progress is not None:
            progress(source.tell() - position)
    return report


def _import_events(
    log: EventLog,
    events: Iterator[Event],
    report: ImportReport,
    batch_size: int,
    progress: Progress | None,
) -> ImportReport:
    batch: list[Event] = []
    for event in events:
        _note(report, event)
        batch.append(event)
        if len(batch) >= batch_size:
            _flush(log, batch, [], report)
            if progress is not None:
                progress(batch_size)
    count = len(batch)
    _flush(log, batch, [], report)
    if progress is not None:
        progress(count)
    return report


def _note(report: ImportReport, event: Event) -> None:
    if report.first_ts is None:
        report.first_ts = event.ts
    report.last_ts = event.ts


def _flush(
    log: EventLog, batch: list[Event], letters: list[DeadLetter], report: ImportReport
) -> None:
    log.append_batch(batch)
    log.dead_letter(letters)
    report.imported += len(batch)
    batch.clear()
    letters.clear()


def logged_events(
    log: EventLog,
    since: float | None = None,
    until: float | None = None,
    *,
    progress: Progress | None = None,
) -> Iterator[Event]:
    """The events of the log in ``[since, until)``, in log order."""
    for batch in log.read(since, until):
        for logged in batch.events:
            yield logged.event
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
    if trace_format(path) == "parquet":
        return write_parquet(path, events)
    return write_jsonl(path, events)
