"""A user-partitioned Parquet export: a directory of which each Dask worker reads its part.

Layout of an export in ``N`` partitions::

    DIR/user_partition=K/part-00000.parquet   K = 0 .. N-1: every event of the users u with
                                              user_partition(u, N) == K, in log order
    DIR/nodes/part-00000.parquet              the node events (no user), in log order
    DIR/_manifest.json                        written last: the export is complete

Every file has the columns of a Parquet trace (``features.trace.parquet_schema``) and
exists even when it holds no event. Readers take every ``part-*.parquet`` of a partition
in name order. The manifest names the partition count and function
(``features.partitions``), the rows of each partition and of the nodes, the time range and
the export time; a directory without it is an export that did not finish. The leading
underscore keeps ``pyarrow.dataset`` (and Dask) from taking it for data.
"""

from __future__ import annotations

import heapq
import json
import os
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from features.events import Event, NodeStatusChanged
from features.partitions import PARTITION_FUNCTION, user_partition
from features.trace import events_table, parquet_schema, table_events

if TYPE_CHECKING:
    import pyarrow.parquet as pq

MANIFEST: Final = "_manifest.json"
NODES: Final = "nodes"
PART_FILE: Final = "part-00000.parquet"
PART_GLOB: Final = "part-*.parquet"

MAX_PARTITIONS: Final = 256
"""Most partitions of one export: the writer keeps a file open for each."""

BUFFER_ROWS: Final = 100_000
"""Events held in memory before every partition's pending events are written out (a row
group each): what bounds the writer's memory, whatever the log's length."""

READ_BATCH_ROWS: Final = 10_000
"""Rows a reader decodes at a time."""


class ExportExists(ValueError):
    """The export's directory is a file, or a directory that is not empty."""


class IncompleteExport(ValueError):
    """Not a complete partitioned export: no manifest, or files that disagree with it."""


@dataclass(frozen=True, slots=True)
class Manifest:
    """What ``_manifest.json`` says about a finished export."""

    partitions: int
    partition_function: str
    user_rows: tuple[int, ...]
    """Rows of each user partition, by partition number."""
    node_rows: int
    since: float | None
    until: float | None
    exported_at: float
    """Unix seconds (wall clock) at which the export began reading the log."""

    @property
    def rows(self) -> int:
        return sum(self.user_rows) + self.node_rows

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"user_rows": list(self.user_rows), "rows": self.rows}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        return cls(
            partitions=int(data["partitions"]),
            partition_function=str(data["partition_function"]),
            user_rows=tuple(int(n) for n in data["user_rows"]),
            node_rows=int(data["node_rows"]),
            since=data["since"],
            until=data["until"],
            exported_at=float(data["exported_at"]),
        )


def partition_dir(directory: Path, partition: int) -> Path:
    """The folder of user partition ``partition`` (Hive style: ``user_partition=K``)."""
    return directory / f"user_partition={partition}"


def check_partitions(partitions: int) -> None:
    if not 1 <= partitions <= MAX_PARTITIONS:
        raise ValueError(f"partitions must be from 1 to {MAX_PARTITIONS}, not {partitions}")


def check_target(directory: Path) -> None:
    """Refuse a ``directory`` that is a file or a directory with anything in it."""
    if directory.exists() and not directory.is_dir():
        raise ExportExists(f"{directory} is a file, not a directory")
    if directory.is_dir() and any(directory.iterdir()):
        raise ExportExists(f"{directory} is not empty: export into a new or empty directory")


def write_partitioned(
    directory: Path,
    events: Iterable[Event],
    partitions: int,
    *,
    since: float | None,
    until: float | None,
    exported_at: float,
    buffer_rows: int = BUFFER_ROWS,
) -> Manifest:
    """Write ``events`` into ``directory`` in the layout above, manifest last.

    ``directory`` must not exist or be empty (:class:`ExportExists`; nothing is
    overwritten). Memory holds at most ``buffer_rows`` events. On an error the files
    written so far stay, without a manifest.
    """
    import pyarrow.parquet as pq

    check_partitions(partitions)
    check_target(directory)
    folders = [partition_dir(directory, k) for k in range(partitions)] + [directory / NODES]
    for folder in folders:
        folder.mkdir(parents=True)
    pending: list[list[Event]] = [[] for _ in folders]
    rows = [0] * len(folders)
    nodes = partitions  # index of the node events in ``folders``, ``pending`` and ``rows``
    with ExitStack() as stack:
        writers = [
            stack.enter_context(pq.ParquetWriter(folder / PART_FILE, parquet_schema()))
            for folder in folders
        ]
        held = 0
        for event in events:
            if isinstance(event, NodeStatusChanged):
                pending[nodes].append(event)
            else:
                pending[user_partition(event.user_id, partitions)].append(event)
            held += 1
            if held >= buffer_rows:
                _flush(writers, pending, rows)
                held = 0
        _flush(writers, pending, rows)
    manifest = Manifest(
        partitions=partitions,
        partition_function=PARTITION_FUNCTION,
        user_rows=tuple(rows[:nodes]),
        node_rows=rows[nodes],
        since=since,
        until=until,
        exported_at=exported_at,
    )
    _write_manifest(directory, manifest)
    return manifest


def _flush(writers: list[pq.ParquetWriter], pending: list[list[Event]], rows: list[int]) -> None:
    for index, events in enumerate(pending):
        if events:
            writers[index].write_table(events_table(events))
            rows[index] += len(events)
            events.clear()


def _write_manifest(directory: Path, manifest: Manifest) -> None:
    """Write the manifest whole or not at all (a rename), so its presence means complete."""
    partial = directory / f"{MANIFEST}.part"
    partial.write_text(json.dumps(manifest.as_dict(), indent=2, sort_keys=True) + "\n")
    os.replace(partial, directory / MANIFEST)


def read_manifest(directory: Path) -> Manifest:
    """The manifest of a finished export (:class:`IncompleteExport` if there is none)."""
    path = directory / MANIFEST
    if not path.is_file():
        raise IncompleteExport(
            f"{directory} has no {MANIFEST}: not a partitioned export, or one that did not finish"
        )
    manifest = Manifest.from_dict(json.loads(path.read_text()))
    if manifest.partition_function != PARTITION_FUNCTION:
        raise IncompleteExport(
            f"{directory} is partitioned by {manifest.partition_function!r}, "
            f"not by {PARTITION_FUNCTION!r} as features.partitions is"
        )
    return manifest


def partition_files(directory: Path, partition: int) -> list[Path]:
    """The part files of user partition ``partition`` of an export, in name order, checked
    against the manifest (:func:`checked_files`)."""
    manifest = read_manifest(directory)
    if not 0 <= partition < manifest.partitions:
        raise ValueError(
            f"{directory} has partitions 0 to {manifest.partitions - 1}, not {partition}"
        )
    return checked_files(partition_dir(directory, partition), manifest.user_rows[partition])


def node_files(directory: Path) -> list[Path]:
    """The part files of an export's node events, checked against the manifest."""
    return checked_files(directory / NODES, read_manifest(directory).node_rows)


def export_files(directory: Path) -> list[Path]:
    """Every part file of an export, its user partitions' in order, then its node events',
    each folder checked against the manifest (read once)."""
    manifest = read_manifest(directory)
    users = [
        path
        for k, rows in enumerate(manifest.user_rows)
        for path in checked_files(partition_dir(directory, k), rows)
    ]
    return users + checked_files(directory / NODES, manifest.node_rows)


def read_partition(directory: Path, partition: int) -> Iterator[Event]:
    """The events of user partition ``partition`` of an export, in log order."""
    return _events_of(partition_files(directory, partition))


def read_nodes(directory: Path) -> Iterator[Event]:
    """The node events of an export, in log order."""
    return _events_of(node_files(directory))


def read_partitioned(directory: Path) -> Iterator[Event]:
    """Every event of an export, merged back in time order.

    Each partition's (so each user's) events keep their log order; events of different
    partitions at the same ``ts`` come in partition order, node events last.
    """
    manifest = read_manifest(directory)
    sources = [read_partition(directory, k) for k in range(manifest.partitions)]
    sources.append(read_nodes(directory))
    return heapq.merge(*sources, key=_ts)


def _ts(event: Event) -> float:
    return event.ts


def checked_files(folder: Path, expected_rows: int) -> list[Path]:
    """The part files of ``folder`` in name order, after checking that they hold the rows
    the manifest says (a folder or file missing or replaced since the export is an error)."""
    import pyarrow.parquet as pq

    if not folder.is_dir():
        raise IncompleteExport(f"{folder} is missing: the export is not whole")
    paths = sorted(folder.glob(PART_GLOB))
    found = 0
    for path in paths:
        try:
            found += pq.read_metadata(path).num_rows
        except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError
            raise IncompleteExport(f"{path} is not a readable Parquet file: {e}") from e
    if found != expected_rows:
        raise IncompleteExport(f"{folder} holds {found} rows, its manifest says {expected_rows}")
    return paths


def _events_of(paths: list[Path]) -> Iterator[Event]:
    import pyarrow.parquet as pq

    for path in paths:
        with pq.ParquetFile(path) as file:
            for batch in file.iter_batches(batch_size=READ_BATCH_ROWS):
                yield from table_events(batch)
