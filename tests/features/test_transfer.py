from __future__ import annotations

from pathlib import Path

import pytest
import redis

from features.eventlog import EventLog, LogKeys
from features.events import Event, NodeStatus, NodeStatusChanged, UserActivity, UserConnect
from features.trace import parquet_rows, read_parquet, write_jsonl
from features.transfer import UnsupportedFormat, export_trace, import_trace
from tests.features.factories import logged, random_events

NOW = 1_800_000_000.0


def test_jsonl_import_export_round_trip_is_byte_identical(
    redis_client: redis.Redis, key_prefix: str, tmp_path: Path
) -> None:
    source = tmp_path / "in.jsonl"
    events = random_events(4000, seed=11)
    write_jsonl(source, events)
    log = EventLog(redis_client, LogKeys(key_prefix))
    seen: list[int] = []
    report = import_trace(log, source, now=NOW, batch_size=500, progress=seen.append)
    assert report.imported == 4000 and report.rejected_total == 0
    assert sum(seen) == source.stat().st_size
    assert (report.first_ts, report.last_ts) == (events[0].ts, events[-1].ts)
    out = tmp_path / "out.jsonl"
    assert export_trace(log, out) == 4000
    assert out.read_bytes() == source.read_bytes()


def test_parquet_export_and_import(
    redis_client: redis.Redis, key_prefix: str, tmp_path: Path
) -> None:
    events = random_events(1000, seed=2)
    log = logged(redis_client, key_prefix, events)
    out = tmp_path / "out.parquet"
    assert export_trace(log, out) == 1000
    assert list(read_parquet(out)) == events
    again = EventLog(redis_client, LogKeys(key_prefix + "again:"))
    seen: list[int] = []
    assert import_trace(again, out, now=NOW, progress=seen.append).imported == 1000
    assert sum(seen) == parquet_rows(out) == 1000  # the CLI's total for a Parquet import
    assert [e for b in again.read() for e in b.events] == events


def test_export_time_range(redis_client: redis.Redis, key_prefix: str, tmp_path: Path) -> None:
    events = random_events(2000, seed=4)
    log = logged(redis_client, key_prefix, events)
    since, until = events[500].ts, events[1500].ts
    out = tmp_path / "part.parquet"
    count = export_trace(log, out, since, until)
    expected = [e for e in events if since <= e.ts < until]
    assert count == len(expected) and list(read_parquet(out)) == expected


def test_bad_lines_are_dead_lettered_and_the_rest_imported(
    redis_client: redis.Redis, key_prefix: str, tmp_path: Path
) -> None:
    good: list[Event] = [
        UserActivity(1732492800.5, "u1", 1732492800),
        UserConnect(1732492801.0, "u1"),
        NodeStatusChanged(1732492802.0, "node-1", NodeStatus.READY),
    ]
    lines = [
        '{"ts":1732492800.5,"channel":"user:activity","payload":{"user_id":"u1","timestamp":1732492800}}',
        "garbage",
        '{"ts":1732492800.7,"channel":"user:teleport","payload":{"user_id":"u1"}}',
        "",
        '{"ts":1732492801.0,"channel":"user:connect","payload":{"user_id":"u1"}}',
        '{"ts":1900000000.0,"channel":"user:connect","payload":{"user_id":"u1"}}',
        '{"ts":1732492801.5,"channel":"node:status","payload":{"node_id":"n","status":"?"}}',
        '{"ts":1732492802.0,"channel":"node:status","payload":{"node_id":"node-1","status":"ready"}}',
    ]
    source = tmp_path / "mixed.jsonl"
    source.write_text("\n".join(lines) + "\n")
    log = EventLog(redis_client, LogKeys(key_prefix))
    report = import_trace(log, source, now=NOW)
    assert report.imported == 3
    assert report.rejected == {
        "not_json": 1,
        "unknown_channel": 1,
        "future_timestamp": 1,
        "unknown_status": 1,
    }
    assert [e for b in log.read() for e in b.events] == good
    sources = sorted(letter.source for letter in log.dead_letters())
    assert sources == [f"trace:mixed.jsonl:{n}" for n in (2, 3, 6, 7)]


def test_unknown_format_is_refused(
    redis_client: redis.Redis, key_prefix: str, tmp_path: Path
) -> None:
    path = tmp_path / "events.csv"
    path.write_text("ts,channel\n")
    with pytest.raises(UnsupportedFormat):
        import_trace(EventLog(redis_client, LogKeys(key_prefix)), path, now=NOW)
