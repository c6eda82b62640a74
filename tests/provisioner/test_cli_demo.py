"""The unattended demo, as a user runs it: a subprocess on a fresh home, then a summary."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from tests.provisioner.cli_runner import home_env, last_json, run_cli
from tests.servers import free_port


@pytest.mark.integration
def test_unattended_demo_prints_a_summary_and_leaves_nothing_running(home: Path) -> None:
    port, node_port = free_port(), free_port()
    result = run_cli(
        "demo",
        "--duration",
        "25",
        "--speed",
        "10",
        "--history-hours",
        "6",
        "--port",
        str(port),
        "--node-api-port",
        str(node_port),
        env=home_env(home),
        timeout=400,
    )
    summary = last_json(result)
    assert summary["model_source"] == "model" and summary["model_version"] == "1"
    assert summary["connects"] > 0
    assert 0.0 < summary["instant_rate"] <= 1.0 and 0.0 < summary["efficiency"] <= 1.0
    assert set(summary["fallbacks"]) >= {"no_model", "predict_error", "not_finite"}
    # The second version in shadow, both judged on the connects that followed their scores.
    live = summary["live"]
    assert live["champion"]["version"] == "1" and live["challenger"]["version"] == "2"
    for role in ("champion", "challenger"):
        figures = live[role]
        assert figures["n"] > 0 and figures["window"] == "1h", figures
        assert figures["log_loss"] > 0 and 0 <= figures["brier"] <= 1 and 0 <= figures["ece"] <= 1
    assert "dashboard" in result.stderr and "stopped" in result.stderr
    # Every process it started has ended: nobody listens on its ports, its Redis is down.
    for used in (port, node_port):
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is fine
            probe.bind(("127.0.0.1", used))
    leftovers = subprocess.run(
        ["pgrep", "-f", str(home)], capture_output=True, text=True, check=False
    )
    assert leftovers.stdout.strip() == "", leftovers.stdout
    assert not (home / "redis" / "redis.sock").exists()


def test_bad_options_are_refused(home: Path) -> None:
    result = run_cli("demo", "--speed", "0", env=home_env(home), check=False)
    assert result.returncode == 2 and "--speed" in result.stderr
