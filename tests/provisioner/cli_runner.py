"""Runs the real ``provisioner`` command in a subprocess, as a user would; and bounds
MLflow's HTTP retries for commands a test runs in its own process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest


def run_cli(
    *args: str, env: dict[str, str], timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "PROVISIONER_HOME")}
    full_env.update(env)
    result = subprocess.run(
        [sys.executable, "-m", "provisioner", *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"provisioner {' '.join(args)} exited {result.returncode}\n{result.stderr}"
        )
    return result


def last_json(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The JSON summary line a command prints last on stdout."""
    line = result.stdout.strip().splitlines()[-1]
    data = json.loads(line)
    assert isinstance(data, dict)
    return data


def home_env(home: Path) -> dict[str, str]:
    return {"PROVISIONER_HOME": str(home)}


def bound_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow's HTTP retries bounded for the commands run in this process (restored after
    the test, where ``wiring.quiet_mlflow`` would leave them set)."""
    for name in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT"):
        monkeypatch.setenv(name, os.environ.get(name, "2"))
