"""The model lifecycle from the command line, as cron or a user runs it: real subprocesses,
the default SQLite store under ``PROVISIONER_HOME`` and the embedded Redis."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from features.events import UserActivity
from features.trace import write_jsonl
from models.registry import CHAMPION, PREVIOUS, ModelRegistry
from provisioner.cli import app
from provisioner.settings import Settings
from simulation.workloads import DEFAULT_START, generate
from tests.provisioner.cli_runner import home_env, last_json, run_cli
from training.dataset import DatasetSpec


@pytest.fixture
def env(home: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # the default store is tested
    return home_env(home) | {"PROVISIONER_ACTOR": "ci"}


def registry_of(home: Path) -> ModelRegistry:
    return ModelRegistry(f"sqlite:///{home / 'mlflow.db'}", "connect-likelihood")


def invoke(*args: str, env: dict[str, str], code: int = 0) -> dict[str, Any]:
    """Run a command in this process (the imports are paid once); its JSON line."""
    result = CliRunner().invoke(app, list(args), env=env)
    assert result.exit_code == code, f"{args}: {result.exit_code}\n{result.stderr}"
    line = result.stdout.strip().splitlines()[-1]
    data = json.loads(line)
    assert isinstance(data, dict)
    return data


@pytest.mark.slow
def test_train_promote_retrain_rollback(
    env: dict[str, str], home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trace = tmp_path / "seed.jsonl"
    write_jsonl(trace, generate("seed", hours=3, seed=1))

    # A fresh home, as a user would: a real process creates the store and the first version.
    trained = last_json(run_cli("train", "--trace", str(trace), env=env))
    assert trained["version"] == "1" and trained["horizon_s"] == 40.0
    metrics = trained["test_metrics"]
    assert metrics["model"]["log_loss"] < metrics["baseline"]["log_loss"]
    assert metrics["model"]["log_loss"] < metrics["heuristic"]["log_loss"]
    assert trained["source"]["kind"] == "trace" and trained["rows"]["test"] > 0
    assert (home / "mlflow.db").exists() and any((home / "mlartifacts").iterdir())

    # The rest of the cycle in this process (the same commands; seconds of imports saved).
    for name in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT"):
        monkeypatch.setenv(name, os.environ.get(name, "2"))  # restored after the test
    dry = invoke("promote", "--trace", str(trace), "--dry-run", env=env)
    assert dry["decision"] == "would promote" and registry_of(home).aliases() == {}

    promoted = invoke("promote", "--trace", str(trace), env=env)
    assert promoted["decision"] == "promoted" and promoted["reference"] == "heuristic"
    assert promoted["actor"] == "ci" and promoted["holdout"]["rows"] == trained["rows"]["test"]

    again = invoke("promote", "--trace", str(trace), "--version", "1", env=env, code=3)
    assert again["decision"] == "rejected"

    retrained = invoke("retrain", "--trace", str(trace), env=env)
    assert retrained["trained"]["version"] == "2"
    assert retrained["promotion"]["decision"] == "promoted"
    assert registry_of(home).aliases() == {CHAMPION: "2", PREVIOUS: "1"}

    rolled = invoke("rollback", "--reason", "test", env=env)
    assert (rolled["from_version"], rolled["to_version"]) == ("2", "1")
    assert registry_of(home).aliases() == {CHAMPION: "1"}
    nothing = invoke("rollback", env=env, code=1)
    assert nothing["kind"] == "NothingToRollBack"


@pytest.mark.integration
def test_bad_data_stops_with_a_message_and_registers_nothing(
    env: dict[str, str], home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    browse = tmp_path / "browse.jsonl"
    write_jsonl(
        browse,
        [UserActivity(DEFAULT_START + k, "u1", int(DEFAULT_START + k)) for k in range(2000)],
    )
    refused = invoke("train", "--trace", str(browse), env=env, code=1)
    assert refused["kind"] == "BadTrainingData" and "both classes" in refused["error"]
    assert registry_of(home).latest_version() is None

    empty = invoke("retrain", env=env, code=1)  # the event log (embedded Redis) is empty
    assert empty["kind"] == "NoEvents"
    missing = invoke("promote", env=env, code=1)
    assert missing["kind"] == "NoCandidate" and "train one first" in missing["error"]
    assert registry_of(home).latest_version() is None


def test_the_help_does_not_import_mlflow() -> None:
    code = "import sys, provisioner.cli; print('mlflow' in sys.modules, 'lightgbm' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_dataset_settings_default_to_the_dataset_spec() -> None:
    settings, spec = Settings(), DatasetSpec()
    assert settings.horizon_s == spec.horizon_s
    assert settings.dataset_every_s == spec.every_s
    assert settings.dataset_quiet_after_s == spec.quiet_after_s
    assert settings.dataset_quiet_stride == spec.quiet_stride
