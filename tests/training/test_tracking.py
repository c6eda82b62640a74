from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import urlparse

import mlflow
import numpy as np
import pytest

from features.definitions import FEATURE_NAMES
from models.horizon import HorizonSource, horizon_from_boots
from models.registry import ModelRegistry
from tests.lifecycle import register, seed_dataset, seed_table, trace_source, trained
from training.sources import EventSource, from_trace
from training.tracking import TrackingConfig, log_training


def local(uri: str) -> Path:
    return Path(urlparse(uri).path)


def test_a_run_records_what_made_the_model(tracking: TrackingConfig) -> None:
    logged = register(tracking)
    client = mlflow.MlflowClient(tracking.tracking_uri)
    run = client.get_run(logged.run_id)
    data, result = seed_dataset(), trained()

    params = run.data.params
    assert float(params["horizon_s"]) == data.spec.horizon_s
    assert params["horizon_source"] == run.data.tags["horizon_source"] == "given"  # the spec's
    assert float(params["event_range_start"]) == data.event_range[0]
    assert float(params["event_range_end"]) == data.event_range[1]
    assert params["train.max_trees"] == "40" and params["calibration"] == "sigmoid"
    assert params["source.kind"] == "trace"
    assert run.data.tags["data_digest"] == data.digest()

    metrics = run.data.metrics
    for scorer in ("model", "model_raw", "baseline", "heuristic"):
        for name in ("roc_auc", "pr_auc", "brier", "log_loss", "ece"):
            expected = getattr(result.metrics[scorer], name)
            assert metrics[f"test_{scorer}_{name}"] == pytest.approx(expected)
    assert metrics["test_positives"] == result.split.test.positives

    artifacts = local(run.info.artifact_uri)
    assert json.loads((artifacts / "features.json").read_text())["features"] == list(FEATURE_NAMES)
    assert "| model |" in (artifacts / "metrics.md").read_text()
    for plot in ("roc", "reliability", "importance"):
        assert (artifacts / "plots" / f"{plot}.png").stat().st_size > 5000
    assert str(artifacts).startswith(str(local(tracking.artifact_location or "")))

    assert run.inputs is not None
    inputs = {d.tags[0].value: d.dataset for d in run.inputs.dataset_inputs}
    assert set(inputs) == {"train", "validation", "test"}
    assert inputs["test"].digest == result.split.test.digest()[:32]
    assert json.loads(inputs["train"].source)["uri"].endswith("seed-3.0h.jsonl")


def test_a_run_says_when_the_horizon_is_the_default_for_want_of_boots(
    tracking: TrackingConfig,
) -> None:
    chosen = horizon_from_boots(trace_source().boots)  # the seed's trace: users only
    assert (
        chosen.source is HorizonSource.DEFAULT and chosen.horizon_s == seed_dataset().spec.horizon_s
    )
    logged = log_training(trained(), seed_dataset(), trace_source(), tracking, horizon=chosen)
    run = mlflow.MlflowClient(tracking.tracking_uri).get_run(logged.run_id)
    params = run.data.params
    assert (params["horizon_source"], params["horizon_boots"]) == ("default", "0")
    assert (params["horizon_boot_quantile"], params["horizon_boot_s"]) == ("0.95", "None")
    assert run.data.tags["horizon_source"] == "default"
    tags = ModelRegistry(tracking.tracking_uri, tracking.model_name).version_info("1").tags
    assert (tags["horizon_source"], tags["horizon_boots"]) == ("default", "0")
    assert "horizon_boot_s" not in tags


@pytest.mark.slow
def test_each_run_registers_the_next_version(tracking: TrackingConfig) -> None:
    first, second = register(tracking), register(tracking)
    assert (first.version, second.version) == ("1", "2")
    registry = ModelRegistry(tracking.tracking_uri, tracking.model_name)
    assert registry.latest_version() == "2"
    tags = registry.version_info("2").tags
    assert tags["horizon_s"] == "40.0" and tags["data_digest"] == seed_dataset().digest()
    assert json.loads(tags["test_metrics"])["log_loss"] == pytest.approx(
        trained().metrics["model"].log_loss, rel=1e-4
    )
    assert tags["run_id"] == second.run_id


def test_the_registered_model_predicts_as_trained(tracking: TrackingConfig) -> None:
    logged = register(tracking)
    model = ModelRegistry(tracking.tracking_uri, tracking.model_name).load(logged.version)
    test = trained().split.test
    np.testing.assert_allclose(model.predict_proba(test.X), trained().test_probability["model"])


def test_the_log_is_snapshot_as_parquet(tracking: TrackingConfig, tmp_path: Path) -> None:
    source = EventSource(seed_table(), "log", "pp:events", since=None, until=None)
    logged = log_training(trained(), seed_dataset(), source, tracking)
    snapshot = local(logged.artifact_uri) / "data" / "events.parquet"
    again = from_trace(snapshot, now=0.0).local_table()
    np.testing.assert_array_equal(again.ts_ms, seed_table().ts_ms)
    np.testing.assert_array_equal(again.kind, seed_table().kind)
    assert [again.user_ids[u] for u in again.user] == [
        seed_table().user_ids[u] for u in seed_table().user
    ]
    run = mlflow.MlflowClient(tracking.tracking_uri).get_run(logged.run_id)
    assert run.inputs is not None
    source_uri = json.loads(run.inputs.dataset_inputs[0].dataset.source)["uri"]
    assert source_uri.endswith("data/events.parquet")


def test_mlflow_s_process_state_is_left_as_found(
    tracking: TrackingConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", "sqlite:////somewhere/else.db")
    before = mlflow.get_tracking_uri()
    register(tracking)
    assert mlflow.get_tracking_uri() == before
    assert "MLFLOW_TRACKING_URI" not in os.environ  # or the next Settings() would read it
    assert os.environ["MLFLOW_REGISTRY_URI"] == "sqlite:////somewhere/else.db"
