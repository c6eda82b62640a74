"""The model lifecycle from the command line, as cron or a user runs it: real subprocesses,
the default SQLite store under ``PROVISIONER_HOME`` and the embedded Redis."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from typer.testing import CliRunner

from features.eventlog import EventLog, LogKeys
from features.events import UserActivity
from features.trace import write_jsonl
from models.horizon import HorizonChoice, HorizonSource, horizon_from_boots
from models.model_types import DEFAULT_MODEL_TYPE, ModelType
from models.registry import CHAMPION, PREVIOUS, ModelRegistry
from provisioner import wiring
from provisioner.cli import app
from provisioner.embedded_redis import EmbeddedRedis
from provisioner.settings import Settings
from simulation.workloads import DEFAULT_START, generate
from tests.lifecycle import fleet_boots, merged
from tests.provisioner.cli_runner import bound_retries, home_env, last_json, run_cli
from training.dataset import DatasetSpec

HOUR = 3600.0


@pytest.fixture
def env(home: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # the default store is tested
    return home_env(home) | {"PROVISIONER_ACTOR": "ci"}


def registry_of(home: Path) -> ModelRegistry:
    return ModelRegistry(f"sqlite:///{home / 'mlflow.db'}", "connect-likelihood")


def invoke(*args: str, env: dict[str, str], code: int = 0) -> dict[str, Any]:
    """Run a command in this process (the imports are paid once); its JSON line."""
    return invoked(*args, env=env, code=code)[0]


def invoked(*args: str, env: dict[str, str], code: int = 0) -> tuple[dict[str, Any], str]:
    """Run a command in this process; its JSON line and what it said on stderr."""
    result = CliRunner().invoke(app, list(args), env=env)
    assert result.exit_code == code, f"{args}: {result.exit_code}\n{result.stderr}"
    line = result.stdout.strip().splitlines()[-1]
    data = json.loads(line)
    assert isinstance(data, dict)
    return data, result.stderr


@pytest.mark.slow
def test_train_promote_retrain_rollback(
    env: dict[str, str], home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trace = tmp_path / "seed.jsonl"
    write_jsonl(trace, generate("seed", hours=3, seed=1))

    # A fresh home, as a user would: a real process creates the store and the first version.
    trained = last_json(run_cli("train", "--trace", str(trace), env=env))
    assert trained["version"] == "1" and trained["horizon_s"] == 40.0
    assert trained["horizon"]["source"] == "default"  # the trace holds no node events
    metrics = trained["test_metrics"]
    assert metrics["model"]["log_loss"] < metrics["baseline"]["log_loss"]
    assert metrics["model"]["log_loss"] < metrics["heuristic"]["log_loss"]
    assert trained["source"]["kind"] == "trace" and trained["rows"]["test"] > 0
    assert (home / "mlflow.db").exists() and any((home / "mlartifacts").iterdir())

    # The rest of the cycle in this process (the same commands; seconds of imports saved).
    bound_retries(monkeypatch)
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


@pytest.mark.slow
def test_a_curve_is_trained_promoted_retrained_by_the_setting_and_rolled_back(
    env: dict[str, str], home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bound_retries(monkeypatch)
    trace = tmp_path / "seed.jsonl"
    write_jsonl(trace, generate("seed", hours=3, seed=1))

    trained, said = invoked("train", "--trace", str(trace), "--model-type", "curve", env=env)
    assert trained["version"] == "1" and trained["model_type"] == "curve"
    curve = trained["curve_metrics"]
    assert curve["horizons_s"] == [5.0 * k for k in range(1, 9)]
    assert len(curve["per_horizon"]) == 8 and 0 < curve["integrated_brier"] < 0.05
    assert (
        trained["test_metrics"]["model"]["log_loss"]
        < trained["test_metrics"]["heuristic"]["log_loss"]
    )
    assert "a curve" in said and "integrated Brier" in said
    assert registry_of(home).version_info("1").tags["model_type"] == "curve"

    promoted = invoke("promote", "--trace", str(trace), env=env)
    assert promoted["decision"] == "promoted" and promoted["reference"] == "heuristic"

    # cron runs `retrain` bare: the setting says which type it trains.
    retrained = invoke(
        "retrain", "--trace", str(trace), env=env | {"PROVISIONER_MODEL_TYPE": "curve"}
    )
    assert retrained["trained"]["model_type"] == "curve"
    promotion = retrained["promotion"]
    assert promotion["decision"] == "promoted" and promotion["reference"] == "version 1"
    assert "integrated_brier" in {g["metric"] for g in promotion["gates"]}
    assert promotion["curves"]["horizons_s"] == curve["horizons_s"]
    assert registry_of(home).aliases() == {CHAMPION: "2", PREVIOUS: "1"}

    rolled = invoke("rollback", env=env)
    assert (rolled["from_version"], rolled["to_version"]) == ("2", "1")
    assert registry_of(home).load_alias(CHAMPION).curve_model is not None


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


@pytest.fixture
def embedded_client(embedded_server: EmbeddedRedis, key_prefix: str) -> Iterator[redis.Redis]:
    """A client of the session's embedded server only; this test's keys deleted afterwards."""
    client = redis.Redis.from_url(embedded_server.url)
    yield client
    keys = list(client.scan_iter(f"{key_prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


def test_train_chooses_the_horizon_from_the_logged_boots_or_says_there_are_none(
    env: dict[str, str],
    home: Path,
    embedded_server: EmbeddedRedis,
    embedded_client: redis.Redis,
    key_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On the embedded server only (two trainings): the choice from the log's boots is
    tested on both servers in tests/training/test_retrain.py."""
    bound_retries(monkeypatch)
    # Three hours of users; nodes booting in 40-59 s from the second half on.
    half = DEFAULT_START + 1.5 * HOUR
    nodes = fleet_boots("uniform:40:59", [half + 60.0 * k for k in range(90)])
    log = EventLog(embedded_client, LogKeys(key_prefix))
    log.append_many(merged(generate("seed", hours=3, seed=1), nodes.events))
    env = env | {"REDIS_URL": embedded_server.url, "PROVISIONER_KEY_PREFIX": key_prefix}

    trained, said = invoked("train", env=env)
    chosen = horizon_from_boots(nodes.boots)
    assert chosen.source is HorizonSource.BOOTS and chosen.boots == 45
    assert trained["horizon"] == chosen.as_dict() and trained["horizon_s"] == chosen.horizon_s
    assert trained["source"]["boots"] == 45 and 50.0 <= chosen.horizon_s <= 69.0
    assert said.count(chosen.describe()) == 2  # when chosen, and with the version
    tags = registry_of(home).version_info("1").tags
    assert (tags["horizon_source"], tags["horizon_s"]) == ("boots", str(chosen.horizon_s))

    before, said = invoked("train", "--until", str(half), env=env)  # no boot in the range
    assert before["horizon"]["source"] == "default" and before["horizon_s"] == 40.0
    assert "label horizon 40 s (the default): no node boots" in said
    tags = registry_of(home).version_info("2").tags
    assert (tags["horizon_source"], tags["horizon_boots"]) == ("default", "0")


def test_an_explicit_horizon_wins_over_the_boots(
    env: dict[str, str], home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bound_retries(monkeypatch)
    trace = tmp_path / "seed.jsonl"
    nodes = fleet_boots("fixed:55", [DEFAULT_START + 60.0 * k for k in range(180)])
    write_jsonl(trace, merged(generate("seed", hours=3, seed=1), nodes.events))
    env = env | {"PROVISIONER_HORIZON_S": "30"}  # the option wins over it, too

    retrained, said = invoked(
        "retrain", "--trace", str(trace), "--horizon", "25", "--dry-run", env=env
    )
    trained = retrained["trained"]
    assert trained["horizon"] == HorizonChoice(25.0, HorizonSource.GIVEN).as_dict()
    assert trained["horizon_s"] == 25.0 and trained["source"]["boots"] == 90  # seen, unused
    assert said.count("label horizon 25 s (given)") == 2
    assert retrained["promotion"]["holdout"]["horizon_s"] == 25.0
    tags = registry_of(home).version_info("1").tags
    assert (tags["horizon_source"], tags["horizon_s"]) == ("given", "25.0")


def test_the_horizon_option_wins_then_the_setting_then_the_boots() -> None:
    boots = [50.0] * 100
    assert wiring.horizon(Settings(horizon_s=30.0), 25.0, boots).as_dict()["horizon_s"] == 25.0
    assert wiring.horizon(Settings(horizon_s=30.0), None, boots) == HorizonChoice(
        30.0, HorizonSource.GIVEN
    )
    from_boots = wiring.horizon(Settings(), None, boots)
    assert from_boots == horizon_from_boots(boots) and from_boots.horizon_s == 60.0
    assert wiring.serving_horizon_s(Settings()) == DatasetSpec().horizon_s
    assert wiring.serving_horizon_s(Settings(horizon_s=30.0)) == 30.0


def test_the_help_does_not_import_mlflow() -> None:
    code = "import sys, provisioner.cli; print('mlflow' in sys.modules, 'lightgbm' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_the_model_type_setting_defaults_to_the_classifier() -> None:
    assert Settings().model_type is DEFAULT_MODEL_TYPE is ModelType.CLASSIFIER
    assert Settings(model_type="curve").model_type is ModelType.CURVE  # type: ignore[arg-type]


def test_dataset_settings_default_to_the_dataset_spec() -> None:
    settings, spec = Settings(), DatasetSpec()
    assert settings.horizon_s is None  # chosen from the boots, the spec's default without
    assert wiring.horizon(settings, None, ()).horizon_s == spec.horizon_s
    assert settings.dataset_every_s == spec.every_s
    assert settings.dataset_quiet_after_s == spec.quiet_after_s
    assert settings.dataset_quiet_stride == spec.quiet_stride
