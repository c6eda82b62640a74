"""The model registry failing: unreachable, a champion with damaged artifacts, a champion
that answers NaN.

``provisioner serve`` runs as a real process; the registry is a real MLflow SQLite store,
served over HTTP by a real ``mlflow server`` process that this test starts late and stops.
Whatever the registry does, every ``/v1/predict`` is answered (by the heuristic where the
model cannot answer), ``/v1/model`` says why, the fallback counters of ``/metrics`` move,
and the champion is served again once the registry can give it.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from features.eventlog import EventLog, LogKeys
from features.events import Event, UserActivity, UserConnect, UserDisconnect
from features.online import OnlineFeatures
from features.table import to_ms
from models.classifier import ConnectClassifier, check_booster_text
from models.registry import CHAMPION, ModelRegistry
from provisioner.embedded_redis import EmbeddedRedis
from provisioner.service_wiring import redis_clients
from tests.integration.faults import MlflowServer, ServeProcess, wait_for
from tests.lifecycle import mlflow_root, register, tracking, trained
from tests.servers import free_port
from training.tracking import TrackingConfig, _input_example

pytestmark = pytest.mark.integration

__all__ = ["mlflow_root", "tracking"]  # fixtures


@pytest.fixture
def serve_base(tmp_path: Path, embedded_server: EmbeddedRedis, key_prefix: str) -> dict[str, str]:
    return {
        "PROVISIONER_HOME": str(tmp_path / "home"),
        "REDIS_URL": embedded_server.url,
        "PROVISIONER_KEY_PREFIX": key_prefix,
        "PROVISIONER_CHANNEL_PREFIX": key_prefix,
        "PROVISIONER_MODEL_CHECK_S": "0.3",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
    }


@pytest.fixture
def cleanup(embedded_server: EmbeddedRedis, key_prefix: str) -> Iterator[None]:
    yield
    client, _ = redis_clients(embedded_server.url)
    keys = list(client.scan_iter(f"{key_prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


def predict(service: ServeProcess, users: list[str]) -> dict[str, dict[str, Any]]:
    answer = httpx.post(f"{service.url}/v1/predict", json={"user_ids": users}, timeout=10.0)
    assert answer.status_code == 200, answer.text
    rows: list[dict[str, Any]] = answer.json()
    for row in rows:
        assert 0.0 <= row["probability"] <= 1.0
    return {row["user_id"]: row for row in rows}


def fallbacks(service: ServeProcess) -> dict[str, float]:
    text = service.json_text("/metrics")
    found = re.findall(r'^provisioner_scorer_fallbacks\{reason="(\w+)"\} (\S+)$', text, re.M)
    return {reason: float(value) for reason, value in found}


def model_info(service: ServeProcess) -> dict[str, Any]:
    info: dict[str, Any] = service.json("/v1/model")
    return info


def champion(registry: ModelRegistry, version: str) -> None:
    registry.client.set_registered_model_alias(registry.model_name, CHAMPION, version)


@pytest.mark.usefixtures("cleanup")
def test_registry_unreachable_then_back(
    tmp_path: Path, tracking: TrackingConfig, serve_base: dict[str, str]
) -> None:
    figures: dict[str, Any] = {}
    version = register(tracking).version
    champion(ModelRegistry(tracking.tracking_uri, tracking.model_name), version)
    server = MlflowServer(tracking.tracking_uri, free_port(), tmp_path / "mlflow.log")
    env = serve_base | {
        "MLFLOW_TRACKING_URI": server.url,  # nothing listens there yet
        "PROVISIONER_MODEL_NAME": tracking.model_name,
    }
    try:
        with ServeProcess(env, tmp_path / "serve.log") as service:
            service.wait_ready()
            info = wait_for(
                lambda: (i := model_info(service))["last_error"] and i, "a failed check"
            )
            assert info["source"] == "heuristic"
            assert info["fallback_reason"] == "registry_unavailable"
            assert "registry unreachable" in info["last_error"]
            users = ["ann", "bob", "cid"]
            rows = predict(service, users)
            assert {row["source"] for row in rows.values()} == {"heuristic"}
            assert fallbacks(service)["registry_unavailable"] >= 1

            figures["server_start_s"] = round(server.start(), 1)
            back = time.monotonic()
            info = wait_for(
                lambda: (i := model_info(service))["source"] == "model" and i, "champion", 30.0
            )
            figures["champion_back_s"] = round(time.monotonic() - back, 2)
            assert info["version"] == version and info["last_error"] is None
            assert info["fallback_reason"] is None
            rows = predict(service, users)
            assert {(row["source"], row["model_version"]) for row in rows.values()} == {
                ("model", version)
            }

            server.stop()  # gone again: the model held keeps serving, and /v1/model says so
            info = wait_for(
                lambda: (i := model_info(service))["last_error"] and i, "a failed check again"
            )
            assert info["source"] == "model" and "registry unreachable" in info["last_error"]
            assert {row["source"] for row in predict(service, users).values()} == {"model"}
            assert service.stop() == 0
    finally:
        server.stop()
    print("registry unreachable figures:", figures)


def history(at: float) -> list[Event]:
    """What user ``amy`` did before ``at``: a session, then some activity."""
    return [
        UserActivity(at - 600, "amy", int(at - 600)),
        UserConnect(at - 590, "amy"),
        UserDisconnect(at - 300, "amy"),
        UserActivity(at - 5, "amy", int(at - 5)),
    ]


def nan_classifier(at: float) -> ConnectClassifier:
    """The small trained model with one leaf of one tree set to NaN: a leaf that a user
    never seen reaches at time ``at``, and that neither the stored input example (so the
    model loads: its warm-up passes) nor ``amy`` (with her :func:`history`) reaches."""
    import lightgbm as lgb

    result = trained()
    booster = result.classifier.booster
    empty = OnlineFeatures().features(to_ms(at), ["nobody"])
    seen = OnlineFeatures()
    for event in history(at):
        seen.update(event)
    rows = np.vstack([empty, seen.features(to_ms(at), ["amy"])])
    example = np.asarray(_input_example(result))  # what log_training stores to warm on
    leaves = np.asarray(booster.predict(rows, pred_leaf=True))
    example_leaves = np.asarray(booster.predict(example, pred_leaf=True))
    for tree in range(leaves.shape[1]):
        leaf = int(leaves[0, tree])
        if leaf != leaves[1, tree] and leaf not in example_leaves[:, tree]:
            break
    else:
        raise AssertionError("no leaf only the unknown user reaches")
    lines = check_booster_text(booster.model_to_string())
    start = lines.index(f"Tree={tree}")
    at_line = next(i for i in range(start, len(lines)) if lines[i].startswith("leaf_value="))
    values = lines[at_line].removeprefix("leaf_value=").split(" ")
    values[leaf] = "nan"
    lines[at_line] = "leaf_value=" + " ".join(values)
    broken = lgb.Booster(model_str="\n".join(lines))
    assert np.isnan(broken.predict(rows[:1]))[0] and np.isfinite(broken.predict(rows[1:]))[0]
    assert np.isfinite(broken.predict(example)).all()
    return dataclasses.replace(result.classifier, booster=broken)


def damage(registry: ModelRegistry, version: str) -> None:
    """Truncate the stored booster file of ``version`` (a partial upload, a bad disk)."""
    uri = registry.client.get_model_version_download_uri(registry.model_name, version)
    booster = Path(uri.removeprefix("file://")) / "model.lgb"
    text = booster.read_text()
    booster.write_text(text[: len(text) // 2])


@pytest.mark.usefixtures("cleanup")
def test_damaged_artifacts_and_a_nan_model(
    tmp_path: Path,
    tracking: TrackingConfig,
    serve_base: dict[str, str],
    embedded_server: EmbeddedRedis,
    key_prefix: str,
) -> None:
    registry = ModelRegistry(tracking.tracking_uri, tracking.model_name)
    figures: dict[str, Any] = {}
    anchor = float(int(time.time()))  # the clock stands still at this second
    good = register(tracking).version
    damaged = register(tracking).version
    damage(registry, damaged)
    broken = nan_classifier(anchor)
    nan = register(tracking, dataclasses.replace(trained(), classifier=broken)).version
    champion(registry, damaged)
    env = serve_base | {
        "MLFLOW_TRACKING_URI": tracking.tracking_uri,
        "PROVISIONER_MODEL_NAME": tracking.model_name,
        "PROVISIONER_SPEED": "1e-9",
        "PROVISIONER_CLOCK_ANCHOR": repr(anchor),
    }
    client, _ = redis_clients(embedded_server.url)
    try:
        EventLog(client, LogKeys(key_prefix)).append_batch(history(anchor))
        with ServeProcess(env, tmp_path / "serve.log") as service:
            service.wait_ready()
            # A champion whose files are damaged: refused (the service does not crash).
            info = wait_for(lambda: (i := model_info(service))["last_error"] and i, "a failed load")
            assert info["source"] == "heuristic" and info["fallback_reason"] == "load_failed"
            assert f"loading version {damaged} failed" in info["last_error"]
            rows = predict(service, ["amy", "zed"])
            assert {row["source"] for row in rows.values()} == {"heuristic"}
            figures["load_failed_calls"] = fallbacks(service)["load_failed"]
            assert figures["load_failed_calls"] >= 1
            figures["damaged_error"] = info["last_error"][-60:]

            champion(registry, good)  # the alias moves to a sound version: served
            moved = time.monotonic()
            wait_for(lambda: model_info(service)["version"] == good, "the good champion")
            figures["good_served_after_s"] = round(time.monotonic() - moved, 2)
            rows = predict(service, ["amy", "zed"])
            assert {row["model_version"] for row in rows.values()} == {good}

            champion(registry, nan)  # a model that answers NaN for some users
            wait_for(lambda: model_info(service)["version"] == nan, "the NaN champion")
            before = fallbacks(service).get("not_finite", 0.0)
            rows = predict(service, ["amy", "zed"])
            assert (rows["amy"]["source"], rows["amy"]["model_version"]) == ("model", nan)
            assert (rows["zed"]["source"], rows["zed"]["model_version"]) == ("heuristic", None)
            assert fallbacks(service)["not_finite"] == before + 1
            assert model_info(service)["fallbacks"]["not_finite"] >= 1
            figures["nan_rows_answered_by"] = rows["zed"]["source"]
            figures["probabilities"] = {u: round(r["probability"], 4) for u, r in rows.items()}
            assert service.stop() == 0
    finally:
        client.close()
    print("damaged and NaN model figures:", figures)
