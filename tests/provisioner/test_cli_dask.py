"""``provisioner train|retrain --dask``: a version trained on a local Dask cluster, in the
default SQLite store under ``PROVISIONER_HOME``, that the service's scorer loads; bad
addresses refused before anything is registered."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from features.partitioned import write_partitioned
from features.table import EventTable
from features.trace import write_jsonl
from models.model_scorer import ModelScorer
from models.registry import CHAMPION, ModelRegistry
from provisioner.cli import app
from simulation.workloads import generate
from tests.provisioner.cli_runner import bound_retries, home_env, last_json, run_cli
from tests.servers import free_port
from training.dataset import DatasetSpec, build_dataset


@pytest.fixture
def env(home: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("PROVISIONER_DASK", raising=False)
    return home_env(home) | {"PROVISIONER_ACTOR": "ci"}


@pytest.fixture
def trace(tmp_path: Path) -> Path:
    path = tmp_path / "seed.jsonl"
    write_jsonl(path, generate("seed", hours=3, seed=1))
    return path


def registry_of(home: Path) -> ModelRegistry:
    return ModelRegistry(f"sqlite:///{home / 'mlflow.db'}", "connect-likelihood")


def invoked(*args: str, env: dict[str, str], code: int) -> tuple[dict[str, Any], str]:
    wide = env | {"COLUMNS": "1000"}  # rich's error box wraps at the width
    result = CliRunner().invoke(app, list(args), env=wide)
    assert result.exit_code == code, f"{args}: {result.exit_code}\n{result.stderr}"
    lines = result.stdout.strip().splitlines()
    return (json.loads(lines[-1]) if lines else {}), result.stderr


@pytest.mark.slow
def test_a_version_trained_on_dask_is_one_the_service_loads(
    env: dict[str, str], home: Path, trace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run_cli("train", "--trace", str(trace), "--dask", "local:2", env=env, timeout=240)
    assert len(result.stdout.strip().splitlines()) == 1  # the workers print to stderr
    trained = last_json(result)
    assert trained["version"] == "1" and trained["model_type"] == "classifier"
    assert "Dask at local:2: 2 worker(s)" in result.stderr
    assert "features (user partitions, on Dask)" in result.stderr
    metrics = trained["test_metrics"]
    assert metrics["model"]["log_loss"] < metrics["heuristic"]["log_loss"]

    # The rows are the single-machine rows: the same data digest as a train without Dask.
    table = EventTable.from_events(generate("seed", hours=3, seed=1))
    rows = build_dataset(table, DatasetSpec(horizon_s=trained["horizon_s"]))
    assert trained["data_digest"] == rows.digest()

    # retrain --dask (the setting, in this process), promoted: the scorer serves it.
    bound_retries(monkeypatch)
    retrained, said = invoked(
        "retrain", "--trace", str(trace), env=env | {"PROVISIONER_DASK": "local:2"}, code=0
    )
    assert retrained["trained"]["version"] == "2" and "Dask at local:2" in said
    registry = registry_of(home)
    assert registry.alias_version(CHAMPION) == "2"
    scorer = ModelScorer.from_registry(registry)
    assert scorer.model_version == "2"
    scores = scorer.score(rows.X[:500])
    assert scores.from_model.all() and np.all((scores.probability > 0) & (scores.probability < 1))


@pytest.mark.slow
def test_the_workers_read_a_partitioned_export_themselves(
    env: dict[str, str], home: Path, tmp_path: Path
) -> None:
    export = tmp_path / "export"
    events = list(generate("seed", hours=3, seed=1))
    write_partitioned(export, events, 3, since=None, until=None, exported_at=0.0)
    result = run_cli("train", "--trace", str(export), "--dask", "local:2", env=env, timeout=240)
    on_workers = last_json(result)
    assert f"the Dask workers read {export} themselves" in result.stderr
    assert on_workers["source"]["kind"] == "export"
    here, said = invoked("train", "--trace", str(export), env=env, code=0)
    assert "Dask" not in said and here["source"] == on_workers["source"]
    # The same rows as the events' on one machine: the same data digest.
    rows = build_dataset(EventTable.from_events(events), DatasetSpec(horizon_s=here["horizon_s"]))
    assert here["data_digest"] == on_workers["data_digest"] == rows.digest()

    # A part file gone since the export: an error, and nothing more registered.
    (export / "user_partition=2" / "part-00000.parquet").unlink()
    error, _ = invoked("train", "--trace", str(export), "--dask", "local:2", env=env, code=1)
    assert error["kind"] == "IncompleteExport" and "user_partition=2 holds 0 rows" in error["error"]
    assert registry_of(home).latest_version() == "2"


@pytest.mark.parametrize(
    ("address", "said"),
    [("local:0", "N of local:N must be a whole number >= 1"), ("foo", "is not a Dask address")],
)
def test_a_bad_address_is_bad_usage(
    env: dict[str, str], home: Path, trace: Path, address: str, said: str
) -> None:
    _, stderr = invoked("train", "--trace", str(trace), "--dask", address, env=env, code=2)
    assert said in stderr
    _, stderr = invoked(
        "retrain", "--trace", str(trace), env=env | {"PROVISIONER_DASK": address}, code=2
    )
    assert "PROVISIONER_DASK" in stderr and not (home / "mlflow.db").exists()


def test_an_unreachable_scheduler_fails_and_registers_nothing(
    env: dict[str, str], home: Path, trace: Path
) -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    env = env | {"PROVISIONER_DASK_TIMEOUT_S": "0.5"}
    error, said = invoked("train", "--trace", str(trace), "--dask", address, env=env, code=1)
    assert error["kind"] == "DaskUnavailable" and f"connecting to Dask at {address}" in said
    assert error["error"].startswith(f"no Dask scheduler answered at {address} within 0.5 s")
    assert not (home / "mlflow.db").exists()


def test_dask_trains_the_classifier_only(env: dict[str, str], trace: Path) -> None:
    _, stderr = invoked(
        "train",
        "--trace",
        str(trace),
        "--dask",
        "local:2",
        "--model-type",
        "curve",
        env=env,
        code=2,
    )
    assert "Dask trains the classifier only, not a curve" in stderr
