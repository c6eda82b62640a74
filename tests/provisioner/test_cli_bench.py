"""``provisioner bench`` as a user runs it: a subprocess, a few virtual hours."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.provisioner.cli_runner import home_env, last_json, run_cli

pytestmark = pytest.mark.slow


def test_bench_prints_a_table_and_one_json_line_and_writes_the_json(
    tmp_path: Path, home: Path
) -> None:
    out = tmp_path / "bench.json"
    result = run_cli(
        "bench",
        "--hours",
        "1",
        "--seed",
        "2",
        "--policies",
        "static:3,seed-rule,heuristic,oracle",
        "--json",
        str(out),
        env=home_env(home),
    )
    summary = last_json(result)
    written = json.loads(out.read_text())
    assert {k: v for k, v in summary.items() if k not in ("seconds", "wall_s")} == written
    assert (written["workload"], written["seed"], written["hours"]) == ("seed", 2, 1.0)
    assert written["boot"] == "uniform:10:29"
    names = [p["policy"] for p in written["policies"]]
    assert names == ["static:3", "seed-rule", "heuristic", "oracle"]
    assert set(summary["wall_s"]) == set(names)
    assert "efficiency" in result.stderr and "oracle" in result.stderr  # the table
    assert len(result.stdout.strip().splitlines()) == 1
    # stderr is a pipe, not a terminal: progress as plain lines, one per finished policy
    lines = result.stderr.splitlines()
    for name in names:
        assert f"bench {name}: 100% (1.0 h of 1 h simulated)" in lines


def test_bench_with_a_boot_schedule_names_it_in_the_json_and_the_table(
    tmp_path: Path, home: Path
) -> None:
    out = tmp_path / "bench.json"
    schedule = "uniform:10:29, uniform:60:180@0.5"
    args = ["--hours", "1", "--seed", "2", "--policies", "static:1,oracle", "--json", str(out)]
    result = run_cli("bench", *args, "--boot", schedule, env=home_env(home))
    written = json.loads(out.read_text())
    assert written["boot"] == "uniform:10:29,uniform:60:180@0.5"  # canonical
    start = written["scored"]["start"]
    assert written["boot_schedule"] == [
        {"boot": "uniform:10:29", "from_hour": 0.0, "start": start},
        {"boot": "uniform:60:180", "from_hour": 0.5, "start": start + 1800.0},
    ]
    assert "bench, boot uniform:10:29,uniform:60:180@0.5" in result.stderr  # the table's title


def test_bench_on_a_trace_with_a_model_and_a_sweep_plot(tmp_path: Path, home: Path) -> None:
    trace = tmp_path / "seed.jsonl"
    run_cli("simulate", "--hours", "4", "--seed", "6", "--out", str(trace), env=home_env(home))
    plot = tmp_path / "frontier.png"
    result = run_cli(
        "bench",
        "--trace",
        str(trace),
        "--train-fraction",
        "0.5",
        "--policies",
        "static:2,model,oracle",
        "--sweep",
        "--plot",
        str(plot),
        env=home_env(home),
        timeout=300,
    )
    summary = last_json(result)
    assert summary["workload"] == "trace" and summary["hours"] == 2.0
    assert summary["model"]["trained_on"]["hours"] == 2.0
    assert summary["model"]["trained_on"]["end"] <= summary["scored"]["start"]
    assert summary["wall_s"]["train model"] > 0
    families = {p["policy"].split(":")[0] for p in summary["sweep"]}
    assert families == {"static", "model", "oracle"}
    assert set(summary["frontier"]) == families
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_bad_input_exits_2_and_says_what_is_wrong(tmp_path: Path, home: Path) -> None:
    bad = [
        (["--policies", "static"], "static needs a pool size"),
        (["--workload", "nope"], "not a workload"),
        (["--train-fraction", "0.5"], "needs a trace"),
        (["--trace", str(tmp_path / "missing.jsonl"), "--policies", "oracle"], "no trace file"),
        (["--trace", str(tmp_path / "missing.jsonl")], "needs a training trace"),
        (["--json", str(tmp_path / "no" / "out.json")], "does not exist"),
        (["--history", "0"], "must be a number of hours > 0"),
        (["--history", "24", "--train-hours", "24"], "only applies to a generated workload"),
        (["--boot", "uniform:10:29,fixed:5"], "part 2 'fixed:5' needs @HOURS"),
        (["--boot", "fixed:5,fixed:9@0.2"], "at or after the end of the scored window (0.1 h)"),
    ]
    for args, message in bad:
        result = run_cli("bench", "--hours", "0.1", *args, env=home_env(home), check=False)
        assert result.returncode == 2, (args, result.stderr)
        text = " ".join(result.stderr.replace("\u2502", " ").split())  # unbox rich's panel
        assert message in text, (args, result.stderr)
