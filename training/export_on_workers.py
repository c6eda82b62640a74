"""A partitioned export read by the Dask workers: each reads its partitions' files itself.

``provisioner events export --partitions N`` writes one folder per user partition
(``features.partitioned``). A job training on a cluster from such an export does not read
its events: each worker reads whole partitions from the directory (which must be at the
same path on the driver and on every worker: a shared file system), keeps them as a table,
and tells the driver what it holds (:class:`~training.sources.PartSummary`). The driver
reads only the manifest and the node events (the boot times that choose a horizon).

A range is applied as on one machine (``training.sources``): the window ends at the
export's latest user event, which the workers report first; then each worker keeps its
partitions' events in the range, warm-up included. A worker's table numbers its own users
in their sorted order; ``training.distributed`` maps them to the whole's numbers by the
ids, so the rows are those built from the same events on one machine.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from features.partitioned import IncompleteExport, partition_files, read_manifest, read_nodes
from features.table import EventTable
from training.sources import (
    EventSource,
    PartSummary,
    ReadRange,
    WorkerEvents,
    read_parquet_events,
    within,
)

if TYPE_CHECKING:
    from distributed import Client, Future

ReadProgress = Callable[[int, int], None]
"""``progress(partitions_read, partitions)``."""


def read_part(directory: str, partition: int) -> EventTable:
    """The user events of one partition of the export at ``directory`` (a worker's task),
    checked against its manifest."""
    path = Path(directory)
    if not path.is_dir():
        import socket

        raise IncompleteExport(
            f"{directory} is not on the Dask worker at {socket.gethostname()}: the export "
            "must be at the same path on every worker (a shared file system)"
        )
    table, _ = read_parquet_events(partition_files(path, partition))
    return table


def summarize(part: EventTable) -> PartSummary:
    """What the driver needs to know of a partition's events (a worker's task)."""
    if not len(part):
        return PartSummary(0, part.user_ids, 0, 0)
    return PartSummary(len(part), part.user_ids, int(part.ts_ms[0]), int(part.ts_ms[-1]))


def from_export(
    client: Client,
    directory: Path,
    *,
    since: float | None = None,
    until: float | None = None,
    window_hours: float | None = None,
    warmup_hours: float = 0.0,
    progress: ReadProgress | None = None,
) -> EventSource:
    """The user events of the export at ``directory`` in the range (or window), with
    ``warmup_hours`` before it, read and held by the workers of ``client``; the node boots
    read here."""
    from distributed import as_completed

    report = progress or (lambda done, total: None)
    manifest = read_manifest(directory)
    where = str(directory.resolve())
    read = [client.submit(read_part, where, k, pure=False) for k in range(manifest.partitions)]
    report(0, len(read))
    for done, _ in enumerate(as_completed(read), start=1):
        report(done, len(read))
    events = WorkerEvents(tuple(read), _summaries(client, read))
    latest = events.last_ms / 1000 if len(events) else None
    span = ReadRange.of(since, until, window_hours, warmup_hours, latest)
    if span.read_since is not None or span.until is not None:
        parts = [client.submit(within, p, span.read_since, span.until) for p in read]
        events = WorkerEvents(tuple(parts), _summaries(client, parts))
    return span.source(events, "export", str(directory), read_nodes(directory))


def _summaries(client: Client, parts: list[Future]) -> tuple[PartSummary, ...]:
    summaries: list[PartSummary] = client.gather([client.submit(summarize, p) for p in parts])
    return tuple(summaries)
