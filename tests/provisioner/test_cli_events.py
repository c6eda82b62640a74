from __future__ import annotations

from pathlib import Path

import pytest
import redis

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
