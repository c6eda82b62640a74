from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import redis

from features.eventlog import EventLog, LogKeys
from features.events import Event, NodeStatusChanged, UserEvent
from features.partitioned import (
    MANIFEST,
    ExportExists,
    IncompleteExport,
    partition_dir,
    read_manifest,
    read_nodes,
    read_partition,
    read_partitioned,
    write_partitioned,
)
from features.partitions import PARTITION_FUNCTION, user_partition
from features.trace import read_parquet
from features.transfer import export_partitioned, import_trace
from tests.features.factories import logged, random_events

NOW = 1_800_000_000.0
EXPORTED_AT = 1_790_000_000.0


def by_user(events: list[Event]) -> dict[str, list[UserEvent]]:
    users: dict[str, list[UserEvent]] = defaultdict(list)
    for event in events:
        if not isinstance(event, NodeStatusChanged):
            users[event.user_id].append(event)
    return dict(users)


def nodes_of(events: list[Event]) -> list[Event]:
    return [e for e in events if isinstance(e, NodeStatusChanged)]


def test_log_to_partitions_and_back(
    redis_client: redis.Redis, key_prefix: str, tmp_path: Path
) -> None:
    events = random_events(3000, seed=21)
    log = logged(redis_client, key_prefix, events)
    out = tmp_path / "export"
    seen: list[int] = []
    manifest = export_partitioned(log, out, 4, exported_at=EXPORTED_AT, progress=seen.append)
    assert sum(seen) == 3000 and manifest.rows == 3000
    read: dict[str, list[UserEvent]] = {}
    for k in range(4):
        in_k = by_user(list(read_partition(out, k)))
        assert all(user_partition(user, 4) == k for user in in_k)
        assert not in_k.keys() & read.keys()  # each user in exactly one partition
        read |= in_k
    assert read == by_user(events)  # every user's events, in log order
    assert list(read_nodes(out)) == nodes_of(events)
    merged = list(read_partitioned(out))
    assert sorted(merged, key=repr) == sorted(events, key=repr)
    assert [e.ts for e in merged] == sorted(e.ts for e in events)
    assert by_user(merged) == by_user(events) and nodes_of(merged) == nodes_of(events)


def test_a_time_range_is_exported_and_recorded(
    redis_client: redis.Redis, key_prefix: str, tmp_path: Path
) -> None:
    events = random_events(2000, seed=4)
    log = logged(redis_client, key_prefix, events)
    since, until = events[500].ts, events[1500].ts
    out = tmp_path / "range"
    manifest = export_partitioned(log, out, 2, since, until, exported_at=EXPORTED_AT)
    expected = [e for e in events if since <= e.ts < until]
    assert (manifest.since, manifest.until, manifest.rows) == (since, until, len(expected))
    assert by_user(list(read_partitioned(out))) == by_user(expected)


def test_manifest_counts_match_the_files(tmp_path: Path) -> None:
    events = random_events(2000, seed=5)
    out = tmp_path / "export"
    manifest = write_partitioned(
        out, events, 3, since=None, until=1.5e9, exported_at=EXPORTED_AT, buffer_rows=128
    )
    assert read_manifest(out) == manifest
    data = json.loads((out / MANIFEST).read_text())
    assert data["partitions"] == 3 and data["partition_function"] == PARTITION_FUNCTION
    assert (data["since"], data["until"], data["exported_at"]) == (None, 1.5e9, EXPORTED_AT)
    users = by_user(events)
    for k in range(3):
        expected = sum(len(v) for u, v in users.items() if user_partition(u, 3) == k)
        (part,) = partition_dir(out, k).glob("part-*.parquet")
        assert data["user_rows"][k] == expected == len(list(read_parquet(part)))
        assert pq.ParquetFile(part).metadata.num_row_groups > 1  # written as it went
    assert (
        data["node_rows"]
        == len(nodes_of(events))
        == len(list(read_parquet(out / "nodes" / "part-00000.parquet")))
    )
    assert data["rows"] == 2000
    assert sorted(p.name for p in out.iterdir()) == [
        MANIFEST,
        "nodes",
        "user_partition=0",
        "user_partition=1",
        "user_partition=2",
    ]


def test_empty_partitions_still_have_a_file(tmp_path: Path) -> None:
    out = tmp_path / "export"
    manifest = write_partitioned(out, [], 5, since=None, until=None, exported_at=EXPORTED_AT)
    assert manifest.user_rows == (0,) * 5 and manifest.node_rows == 0
    assert all(list(partition_dir(out, k).glob("part-*.parquet")) for k in range(5))
    assert list(read_partitioned(out)) == []


def test_a_non_empty_directory_or_a_file_is_refused_and_left_alone(tmp_path: Path) -> None:
    events = random_events(50, seed=1)
    used = tmp_path / "used"
    used.mkdir()
    (used / "keep.txt").write_text("mine")
    with pytest.raises(ExportExists, match="not empty"):
        write_partitioned(used, events, 2, since=None, until=None, exported_at=EXPORTED_AT)
    assert [p.name for p in used.iterdir()] == ["keep.txt"]
    a_file = tmp_path / "file.parquet"
    a_file.write_bytes(b"x")
    with pytest.raises(ExportExists, match="is a file"):
        write_partitioned(a_file, events, 2, since=None, until=None, exported_at=EXPORTED_AT)
    assert a_file.read_bytes() == b"x"
    empty = tmp_path / "empty"
    empty.mkdir()
    write_partitioned(empty, events, 2, since=None, until=None, exported_at=EXPORTED_AT)
    assert read_manifest(empty).rows == 50


@pytest.mark.parametrize("partitions", [0, -1, 257])
def test_bad_partition_counts_are_refused(tmp_path: Path, partitions: int) -> None:
    with pytest.raises(ValueError, match="partitions must be from 1 to 256"):
        write_partitioned(
            tmp_path / "x", [], partitions, since=None, until=None, exported_at=EXPORTED_AT
        )
    assert not (tmp_path / "x").exists()


def test_an_unfinished_or_altered_export_is_not_read(tmp_path: Path) -> None:
    events = random_events(300, seed=3)
    out = tmp_path / "export"
    write_partitioned(out, events, 2, since=None, until=None, exported_at=EXPORTED_AT)
    with pytest.raises(ValueError, match="partitions 0 to 1, not 2"):
        read_partition(out, 2)
    (next(partition_dir(out, 1).glob("part-*.parquet"))).unlink()
    with pytest.raises(IncompleteExport, match="manifest says"):
        read_partition(out, 1)
    (out / MANIFEST).unlink()
    with pytest.raises(IncompleteExport, match="did not finish"):
        list(read_partitioned(out))


def test_a_failed_export_leaves_no_manifest(tmp_path: Path) -> None:
    def events() -> Iterator[Event]:
        yield from random_events(10, seed=2)
        raise RuntimeError("the log went away")

    out = tmp_path / "export"
    with pytest.raises(RuntimeError, match="went away"):
        write_partitioned(out, events(), 2, since=None, until=None, exported_at=EXPORTED_AT)
    assert out.is_dir() and not (out / MANIFEST).exists()
    with pytest.raises(IncompleteExport):
        read_partition(out, 0)


def test_a_partitioned_export_imports_back_into_a_log(
    redis_client: redis.Redis, key_prefix: str, tmp_path: Path
) -> None:
    events = random_events(1500, seed=9)
    out = tmp_path / "export"
    write_partitioned(out, events, 3, since=None, until=None, exported_at=EXPORTED_AT)
    log = EventLog(redis_client, LogKeys(key_prefix))
    seen: list[int] = []
    report = import_trace(log, out, now=NOW, batch_size=400, progress=seen.append)
    assert report.imported == 1500 and report.rejected_total == 0 and sum(seen) == 1500
    logged = [e for b in log.read() for e in b.events]
    assert logged == list(read_partitioned(out))
    assert by_user(logged) == by_user(events) and nodes_of(logged) == nodes_of(events)
