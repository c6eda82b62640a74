from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import redis

from features.boot_times import boot_durations
from features.definitions import FEATURE_NAMES
from features.eventlog import EventLog, LogKeys
from features.trace import write_jsonl, write_parquet
from simulation.workloads import DEFAULT_START, generate
from tests.lifecycle import fleet_boots, merged, seed_table
from training.dataset import DatasetSpec, build_dataset
from training.sources import from_log, from_trace, latest_event_time, window_bounds, write_snapshot

HOUR = 3600.0


def test_window_bounds() -> None:
    assert window_bounds(None, None, None, 100.0) == (None, None)
    assert window_bounds(None, None, 1.0, 10_000.0) == (10_000.0 - HOUR, None)
    assert window_bounds(None, 8000.0, 1.0, 10_000.0) == (8000.0 - HOUR, 8000.0)
    assert window_bounds(5.0, None, 1.0, 10_000.0) == (5.0, None)  # explicit since wins
    assert window_bounds(None, None, 1.0, None) == (None, None)  # empty: nothing to anchor
    with pytest.raises(ValueError):
        window_bounds(None, None, -1.0, 10.0)


def test_a_trace_window_ends_at_its_last_event(tmp_path: Path) -> None:
    path = tmp_path / "seed.jsonl"
    write_jsonl(path, generate("seed", hours=3, seed=1))
    (path.parent / "bad.jsonl").write_text(path.read_text() + "not json\n")
    whole = from_trace(path, now=DEFAULT_START + 10 * HOUR)
    np.testing.assert_array_equal(whole.local_table().ts_ms, seed_table().ts_ms)
    last = whole.event_range[1]
    recent = from_trace(path, window_hours=1.0, now=DEFAULT_START + 10 * HOUR)
    assert recent.event_range[0] >= last - HOUR and recent.event_range[1] == last
    assert recent.local_table().n_users <= whole.local_table().n_users
    assert set(recent.local_table().user.tolist()) == set(range(recent.local_table().n_users))
    bad = from_trace(path.parent / "bad.jsonl", now=DEFAULT_START + 10 * HOUR)
    assert bad.rejected == 1 and len(bad.local_table()) == len(whole.local_table())


def test_progress_reports_every_byte(tmp_path: Path) -> None:
    path = tmp_path / "seed.jsonl"
    write_jsonl(path, generate("seed", hours=5, seed=1))  # more lines than PROGRESS_EVERY
    seen: list[int] = []
    from_trace(path, now=DEFAULT_START + 10 * HOUR, progress=seen.append)
    assert sum(seen) == path.stat().st_size and len(seen) > 1


def test_a_snapshot_reads_back_as_the_same_table(tmp_path: Path) -> None:
    snapshot = write_snapshot(seed_table(), tmp_path / "events.parquet")
    again = from_trace(snapshot, now=0.0)
    np.testing.assert_array_equal(again.local_table().ts_ms, seed_table().ts_ms)
    np.testing.assert_array_equal(again.local_table().kind, seed_table().kind)


def test_the_log_window_ends_at_its_latest_event(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    log = EventLog(redis_client, LogKeys(key_prefix))
    assert latest_event_time(log) is None
    events = list(generate("seed", hours=2, seed=4))
    log.append_many(events)
    assert latest_event_time(log) == pytest.approx(events[-1].ts)
    whole = from_log(log)
    assert len(whole.local_table()) == len(events) and whole.kind == "log"
    recent = from_log(log, window_hours=0.5)
    assert recent.since == pytest.approx(events[-1].ts - 0.5 * HOUR)
    assert recent.event_range[0] >= events[-1].ts - 0.5 * HOUR
    assert recent.since is not None
    assert len(recent.local_table()) == sum(e.ts >= recent.since for e in events)
    ranged = from_log(log, since=DEFAULT_START + HOUR, until=DEFAULT_START + 1.5 * HOUR)
    assert ranged.event_range[0] >= DEFAULT_START + HOUR
    assert ranged.event_range[1] < DEFAULT_START + 1.5 * HOUR


def test_the_log_s_node_boots_in_the_range_come_with_its_user_events(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    users = list(generate("seed", hours=2, seed=4))
    nodes = fleet_boots("uniform:40:59", [DEFAULT_START + 60.0 * k for k in range(120)])
    log = EventLog(redis_client, LogKeys(key_prefix))
    log.append_many(merged(users, nodes.events))

    whole = from_log(log)
    assert len(whole.local_table()) == len(users)  # node events make no user rows
    assert whole.boots == tuple(nodes.boots)  # the fleet's boots, terminated nodes left out
    assert len(whole.boots) == 60 and whole.describe()["boots"] == 60  # every other: gone

    since, until = DEFAULT_START + 0.5 * HOUR, DEFAULT_START + HOUR
    ranged = from_log(log, since=since, until=until)
    inside = boot_durations(e for e in nodes.events if since <= e.ts < until)
    assert ranged.boots == tuple(inside) and 0 < len(inside) < len(whole.boots)

    users_only = EventLog(redis_client, LogKeys(f"{key_prefix}users:"))
    users_only.append_many(users)
    assert from_log(users_only).boots == ()


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_a_trace_s_node_boots_in_the_window(tmp_path: Path, suffix: str) -> None:
    users = list(generate("seed", hours=2, seed=4))
    nodes = fleet_boots("fixed:45", [DEFAULT_START + 60.0 * k for k in range(120)])
    path = tmp_path / f"trace{suffix}"
    events = merged(users, nodes.events)
    (write_jsonl if suffix == ".jsonl" else write_parquet)(path, events)
    whole = from_trace(path, now=DEFAULT_START + 10 * HOUR)
    assert whole.boots == tuple(nodes.boots) and set(whole.boots) == {45.0}
    recent = from_trace(path, window_hours=0.5, now=DEFAULT_START + 10 * HOUR)
    assert recent.since is not None
    assert recent.boots == tuple(boot_durations(e for e in events if e.ts >= recent.since))
    assert 0 < len(recent.boots) < len(whole.boots)


def test_a_warm_up_reads_the_history_before_the_window_and_rows_start_at_it(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    log = EventLog(redis_client, LogKeys(key_prefix))
    events = list(generate("seed", hours=3, seed=4))
    log.append_many(events)
    last = events[-1].ts
    cold = from_log(log, window_hours=1.0)
    warm = from_log(log, window_hours=1.0, warmup_hours=1.5)
    assert cold.rows_since is None and cold.since == pytest.approx(last - HOUR)
    assert warm.rows_since == pytest.approx(last - HOUR)
    assert warm.since == pytest.approx(last - 2.5 * HOUR)
    assert len(warm.table) == sum(e.ts >= last - 2.5 * HOUR for e in events) > len(cold.table)
    assert warm.describe()["rows_since"] == warm.rows_since
    with pytest.raises(ValueError, match="warm-up"):
        from_log(log, window_hours=1.0, warmup_hours=-1.0)

    # The rows are the window's; the features of the same rows have more history.
    spec = DatasetSpec()
    rows = build_dataset(warm.local_table(), spec, rows_since=warm.rows_since)
    alone = build_dataset(cold.local_table(), spec)
    assert len(rows) and rows.t_ms.min() >= round((last - HOUR) * 1000)
    assert rows.t_ms.min() >= alone.t_ms.min() - round(spec.every_s * 1000)
    sessions = FEATURE_NAMES.index("n_sessions")
    assert rows.X[:, sessions].sum() > alone.X[:, sessions].sum()
