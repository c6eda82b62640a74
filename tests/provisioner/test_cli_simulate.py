"""``provisioner simulate`` through typer's runner: trace files, pub/sub and bad input."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from typer.testing import CliRunner, Result

from features.events import Channel, UserConnect
from features.trace import RejectedLine, read_jsonl, read_parquet
from provisioner.cli import app
from simulation.workloads import DEFAULT_START


def run(args: list[str], home: Path, **env: str) -> Result:
    return CliRunner().invoke(app, ["simulate", *args], env={"PROVISIONER_HOME": str(home), **env})


def summary(result: Result) -> dict[str, Any]:
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    data = json.loads(lines[-1])
    assert isinstance(data, dict)
    return data


def test_writes_a_jsonl_trace_and_a_summary(tmp_path: Path, home: Path) -> None:
    (tmp_path / "traces").mkdir()
    out = tmp_path / "traces" / "seed.jsonl"
    data = summary(
        run(["--workload", "seed", "--hours", "2", "--seed", "4", "--out", str(out)], home)
    )
    lines = list(read_jsonl(out, now=time.time()))
    events = [e for e in lines if not isinstance(e, RejectedLine)]
    assert len(events) == len(lines) == data["events"] == sum(data["by_channel"].values())
    times = [e.ts for e in events]
    assert times == sorted(times)
    assert data["first_ts"] == times[0] and data["last_ts"] == times[-1]
    assert data["connects"] == sum(isinstance(e, UserConnect) for e in events)
    assert data["by_channel"][Channel.CONNECT.value] == data["connects"] > 0
    assert data["users"] == data["users_seen"] == 50
    assert data["workload"] == "seed" and data["seed"] == 4 and data["hours"] == 2
    assert data["start"] == DEFAULT_START and data["out"] == str(out)
    assert data["seconds"] >= 0
    assert times[0] >= DEFAULT_START and times[-1] < DEFAULT_START + 2 * 3600
    assert list(out.parent.iterdir()) == [out]  # written under a temporary name, then renamed


def test_same_seed_same_file_other_seed_other_file(tmp_path: Path, home: Path) -> None:
    paths = [tmp_path / f"{name}.jsonl" for name in ("a", "b", "c")]
    for path, seed in zip(paths, ("1", "1", "2"), strict=True):
        summary(run(["--hours", "0.5", "--seed", seed, "--out", str(path)], home))
    a, b, c = (path.read_bytes() for path in paths)
    assert a == b and a != c


def test_writes_parquet_with_start_and_users(tmp_path: Path, home: Path) -> None:
    out = tmp_path / "habits.parquet"
    args = ["--workload", "habits", "--hours", "24", "--users", "40", "--seed", "2"]
    data = summary(run([*args, "--start", "2024-12-02T06:00:00", "--out", str(out)], home))
    start = DEFAULT_START + 7 * 86400 + 6 * 3600
    events = list(read_parquet(out))
    assert len(events) == data["events"] > 0
    assert data["users"] == 40 and data["start"] == start
    assert start <= events[0].ts and events[-1].ts < start + 86400


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--workload", "nope", "--hours", "1", "--out", "x.jsonl"], "not a workload"),
        (["--hours", "0", "--out", "x.jsonl"], "> 0"),
        (["--hours", "-2", "--out", "x.jsonl"], "> 0"),
        (["--hours", "inf", "--out", "x.jsonl"], "> 0"),
        (["--out", "x.jsonl"], "--hours"),
        (["--hours", "1"], "--realtime"),
        (["--hours", "1", "--out", "x.jsonl", "--realtime"], "exclusive"),
        (["--hours", "1", "--out", "x.csv"], ".jsonl or .parquet"),
        (["--hours", "1", "--out", "missing/x.jsonl"], "does not exist"),
        (["--hours", "1", "--out", "x.jsonl", "--speed", "10"], "--realtime"),
        (["--hours", "1", "--out", "x.jsonl", "--start", "yesterday"], "ISO 8601"),
        (["--hours", "1", "--out", "x.jsonl", "--start", "-5"], "start"),
        (["--hours", "1", "--out", "x.jsonl", "--users", "0"], "--users"),
        (["--realtime", "--speed", "0"], "> 0"),
    ],
)
def test_bad_input_is_refused_clearly(
    args: list[str], message: str, tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run(args, home)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "x.jsonl").exists()


def test_realtime_publishes_on_prefixed_channels(
    redis_url: str, redis_client: redis.Redis, key_prefix: str, home: Path
) -> None:
    pubsub = redis_client.pubsub()
    pubsub.subscribe(*(key_prefix + c.value for c in Channel))
    for _ in Channel:
        assert pubsub.get_message(timeout=5) is not None  # subscribed
    result = run(
        ["--realtime", "--speed", "1000", "--hours", "0.05", "--seed", "3"],
        home,
        REDIS_URL=redis_url,
        PROVISIONER_CHANNEL_PREFIX=key_prefix,
    )
    data = summary(result)
    assert data["realtime"] is True and data["stopped"] is False and data["failed"] == 0
    assert data["speed"] == 1000 and data["channel_prefix"] == key_prefix
    received: list[str] = []
    deadline = time.monotonic() + 5
    while len(received) < data["events"] and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.1)
        if message is not None and message["type"] == "message":
            received.append(message["channel"].decode())
    pubsub.close()
    assert data["events"] > 100
    assert len(received) == data["events"]
    for channel, count in data["by_channel"].items():
        assert received.count(key_prefix + channel) == count
    assert data["last_ts"] - data["first_ts"] <= 0.05 * 3600
    assert math.isclose(data["first_ts"], time.time(), abs_tol=1000 * 60)


def test_realtime_without_redis_fails_clearly(home: Path) -> None:
    result = run(["--realtime", "--hours", "1"], home, REDIS_URL="redis://127.0.0.1:1/0")
    assert result.exit_code == 1
    assert "cannot reach Redis" in result.output
