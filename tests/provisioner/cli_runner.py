"""Runs the real ``provisioner`` command in a subprocess, as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


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
