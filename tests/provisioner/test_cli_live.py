"""`promote --challenger`, `promote --live` and `retrain --when-degraded` from the command
line, on the default SQLite store under ``PROVISIONER_HOME``."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from features.trace import write_jsonl
from models.registry import CHALLENGER, CHAMPION, PREVIOUS
from provisioner.cli import app
from provisioner.cli.ml import EXIT_NO_EVIDENCE, EXIT_REJECTED
from simulation.workloads import generate
from tests.lifecycle import HOURS, register
from tests.provisioner.cli_runner import bound_retries
from tests.provisioner.test_cli_ml import env, invoke, registry_of
from training.tracking import TrackingConfig

__all__ = ["env"]

GOOD = {"n": 1000, "log_loss": 0.070, "brier": 0.0210, "degraded": 0}


@pytest.mark.slow
def test_challenger_live_promotion_and_retraining_when_degraded(
    env: dict[str, str], home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bound_retries(monkeypatch)
    trace = tmp_path / "seed.jsonl"
    write_jsonl(trace, generate("seed", hours=HOURS, seed=1))
    tracking = TrackingConfig(
        tracking_uri=f"sqlite:///{home / 'mlflow.db'}",
        experiment="connect-likelihood",
        model_name="connect-likelihood",
        artifact_location=(home / "mlartifacts").as_uri(),
    )
    registry = registry_of(home)
    register(tracking)
    register(tracking)
    assert invoke("promote", "--trace", str(trace), "--version", "1", env=env)["promote"]

    # The champion cannot be the challenger; version 2 can.
    assert invoke("promote", "--challenger", "1", env=env, code=1)["kind"] == "PromotionError"
    usage = CliRunner().invoke(app, ["promote", "--challenger", "1", "--live"], env=env)
    assert usage.exit_code == 2 and "--challenger goes alone" in usage.stderr
    chosen = invoke("promote", "--challenger", "2", "--reason", "shadow it", env=env)
    assert (chosen["action"], chosen["version"], chosen["champion"]) == ("challenger", "2", "1")
    assert registry.aliases() == {CHAMPION: "1", CHALLENGER: "2"}

    # No live evidence at a common step yet: exit 4, nothing moves.
    missing = invoke("promote", "--live", "--trace", str(trace), env=env, code=EXIT_NO_EVIDENCE)
    assert missing["kind"] == "NoLiveEvidence"
    now = time.time()
    registry.log_live("1", GOOD, at=now)
    registry.log_live("2", GOOD | {"log_loss": 0.08}, at=now)
    rejected = invoke("promote", "--live", "--trace", str(trace), env=env, code=EXIT_REJECTED)
    assert rejected["live"]["challenger"]["live_log_loss"] == 0.08
    registry.log_live("1", GOOD, at=now + 1)
    registry.log_live("2", GOOD | {"log_loss": 0.06}, at=now + 1)
    promoted = invoke("promote", "--live", "--trace", str(trace), env=env)
    assert promoted["decision"] == "promoted" and promoted["candidate"] == "2"
    assert registry.aliases() == {CHAMPION: "2", PREVIOUS: "1"}

    # Healthy on fresh evidence: nothing is trained.
    registry.log_live("2", GOOD, at=time.time())
    skipped = invoke("retrain", "--when-degraded", "--trace", str(trace), env=env)
    assert skipped["action"] == "skipped" and skipped["health"]["healthy"]
    assert registry.latest_version() == "2"
    # Degraded: it trains, registers and goes through the gates.
    registry.log_live("2", GOOD | {"degraded": 1}, at=time.time() + 1)
    retrained = invoke("retrain", "--when-degraded", "--trace", str(trace), env=env)
    assert retrained["action"] == "trained" and retrained["trained"]["version"] == "3"
    assert "degraded" in retrained["health"]["reason"]
    assert retrained["promotion"]["decision"] == "promoted"
