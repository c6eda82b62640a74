from __future__ import annotations

from pathlib import Path

import pytest
import redis

from features.partitioned import read_manifest
from features.trace import write_jsonl
from tests.features.factories import random_events
from tests.provisioner.cli_runner import home_env, last_json, run_cli

pytestmark = pytest.mark.integration  # the CLI as processes, most on an embedded Redis of their own


def test_import_export_round_trip(
    redis_url: str, redis_client: redis.Redis, key_prefix: str, tmp_path: Path
) -> None:
    source = tmp_path / "trace.jsonl"
    write_jsonl(source, random_events(3000, seed=8))
    env = {"REDIS_URL": redis_url, "PROVISIONER_KEY_PREFIX": key_prefix}
    imported = last_json(run_cli("events", "import", str(source), env=env))
    assert imported["imported"] == 3000 and imported["rejected"] == 0
    out = tmp_path / "out.jsonl"
    exported = last_json(run_cli("events", "export", "--out", str(out), env=env))
    assert exported["exported"] == 3000
    assert out.read_bytes() == source.read_bytes()
    stats = last_json(run_cli("events", "stats", env=env))
    assert stats["length"] == 3000 and stats["counters"]["appended"] == 3000


def test_embedded_redis_keeps_the_log_between_commands(home: Path, tmp_path: Path) -> None:
    source = tmp_path / "trace.jsonl"
    events = random_events(500, seed=9)
    write_jsonl(source, events)
    run_cli("events", "import", str(source), env=home_env(home))
    assert (home / "redis" / "appendonly.aof").exists()
    since = events[100].ts
    out = tmp_path / "part.jsonl"
    result = run_cli(
        "events", "export", "--out", str(out), "--since", repr(since), env=home_env(home)
    )
    expected = [e for e in events if e.ts >= since]
    assert last_json(result)["exported"] == len(expected)
    assert len(out.read_text().splitlines()) == len(expected)


def test_bad_lines_are_reported_and_strict_fails(home: Path, tmp_path: Path) -> None:
    source = tmp_path / "bad.jsonl"
    source.write_text(
        '{"ts":1732492800.0,"channel":"user:connect","payload":{"user_id":"u1"}}\nnot json at all\n'
    )
    result = run_cli("events", "import", str(source), env=home_env(home))
    summary = last_json(result)
    assert summary["imported"] == 1 and summary["rejected_by_reason"] == {"not_json": 1}
    assert "rejected" in result.stderr
    strict = run_cli("events", "import", "--strict", str(source), env=home_env(home), check=False)
    assert strict.returncode == 1
    dead = run_cli("events", "dead", env=home_env(home))
    assert "not_json" in dead.stderr and "bad.jsonl:2" in dead.stderr


def test_clear_errors_for_bad_arguments(home: Path, tmp_path: Path) -> None:
    missing = run_cli(
        "events", "import", str(tmp_path / "nope.jsonl"), env=home_env(home), check=False
    )
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    csv = tmp_path / "x.csv"
    csv.write_text("a,b\n")
    wrong = run_cli("events", "import", str(csv), env=home_env(home), check=False)
    assert wrong.returncode == 2 and ".jsonl or .parquet" in wrong.stderr
    bad_time = run_cli(
        "events",
        "export",
        "--out",
        str(tmp_path / "o.jsonl"),
        "--since",
        "yesterday-ish",
        env=home_env(home),
        check=False,
    )
    assert bad_time.returncode == 2 and "ISO 8601" in bad_time.stderr


def test_partitioned_export_and_import_of_the_directory(
    redis_url: str, redis_client: redis.Redis, key_prefix: str, tmp_path: Path
) -> None:
    source = tmp_path / "trace.jsonl"
    events = random_events(2000, seed=12)
    write_jsonl(source, events)
    env = {"REDIS_URL": redis_url, "PROVISIONER_KEY_PREFIX": key_prefix}
    run_cli("events", "import", str(source), env=env)
    out = tmp_path / "by-user"
    summary = last_json(
        run_cli("events", "export", "--out", str(out), "--partitions", "3", env=env)
    )
    manifest = read_manifest(out)
    assert summary["exported"] == 2000 and summary["directory"] == str(out)
    assert summary["partitions"] == 3 and summary["rows_per_partition"] == list(manifest.user_rows)
    assert sum(manifest.user_rows) + manifest.node_rows == 2000
    again = {"REDIS_URL": redis_url, "PROVISIONER_KEY_PREFIX": key_prefix + "again:"}
    imported = last_json(run_cli("events", "import", str(out), env=again))
    assert imported["imported"] == 2000 and imported["rejected"] == 0


def test_clear_errors_for_a_partitioned_export(home: Path, tmp_path: Path) -> None:
    wide = home_env(home) | {"COLUMNS": "1000"}  # rich's error box wraps at the width

    def refused(*args: str) -> str:
        result = run_cli("events", "export", *args, env=wide, check=False)
        assert result.returncode == 2, result.stderr
        return result.stderr

    used = tmp_path / "used"
    used.mkdir()
    (used / "keep.txt").write_text("mine")
    assert "is not empty" in refused("--out", str(used), "--partitions", "2")
    assert (used / "keep.txt").read_text() == "mine"
    assert ".jsonl file" in refused("--out", str(tmp_path / "x.jsonl"), "--partitions", "2")
    jsonl = refused("--out", str(tmp_path / "d"), "--partitions", "2", "--format", "jsonl")
    assert "Parquet only" in jsonl
    assert "from 1 to 256" in refused("--out", str(tmp_path / "d"), "--partitions", "300")
    assert "--partitions" in refused("--out", str(tmp_path / "d"), "--partitions", "0")
    mismatch = refused("--out", str(tmp_path / "x.jsonl"), "--format", "parquet")
    assert "needs a .parquet file" in mismatch
    assert not (tmp_path / "d").exists()
    incomplete = run_cli("events", "import", str(used), env=wide, check=False)
    assert incomplete.returncode == 2 and "did not finish" in incomplete.stderr
