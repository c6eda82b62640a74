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

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from features.boot_times import boot_durations
from features.events import NodeStatusChanged
from features.partitioned import partition_files, read_manifest, read_nodes
from features.table import EventTable
from training.sources import (
    EventSource,
    PartSummary,
    WorkerEvents,
    read_parquet_events,
    window_bounds,
    with_warmup,
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

        raise FileNotFoundError(
            f"{directory} is not on the Dask worker at {socket.gethostname()}: the export "
            "must be at the same path on every worker (a shared file system)"
        )
    table, _ = read_parquet_events(partition_files(path, partition))
    return table


def part_in_range(part: EventTable, since: float | None, until: float | None) -> EventTable:
    """A partition's events in ``[since, until)`` (a worker's task)."""
    return within(part, since, until)


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
    whole = _summaries(client, read)
    latest = max((s.last_ms for s in whole if s.events), default=None)
    rows_since, until = window_bounds(
        since, until, window_hours, None if latest is None else latest / 1000
    )
    read_since = with_warmup(rows_since, warmup_hours)
    parts = read
    summaries = whole
    if read_since is not None or until is not None:
        parts = [client.submit(part_in_range, part, read_since, until) for part in read]
        summaries = _summaries(client, parts)
    low = -math.inf if rows_since is None else rows_since
    high = math.inf if until is None else until
    nodes = (e for e in read_nodes(directory) if isinstance(e, NodeStatusChanged))
    return EventSource(
        WorkerEvents(tuple(parts), tuple(summaries)),
        "export",
        str(directory),
        read_since,
        until,
        boots=tuple(boot_durations(e for e in nodes if low <= e.ts < high)),
        rows_since=rows_since if read_since != rows_since else None,
    )


def _summaries(client: Client, parts: list[Future]) -> list[PartSummary]:
    summaries: list[PartSummary] = client.gather([client.submit(summarize, p) for p in parts])
    return summaries
