"""The model lifecycle against a real ``mlflow server`` process over HTTP.

The server runs on a free port with an SQLite backend and proxied artifacts (it serves
them itself: ``mlflow-artifacts:``) in the test's temporary folder, and is stopped at the
end. Training, registration, promotion, rejection, loading and rollback all go over HTTP.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import mlflow
import numpy as np
import pytest

from models.model_scorer import ModelScorer
from models.registry import CHAMPION, PREVIOUS, ModelRegistry
from tests.lifecycle import register, trained, worse
from tests.servers import free_port
from training.promote import load_candidate, promote, rollback
from training.tracking import TrackingConfig

pytestmark = pytest.mark.integration

STARTUP_TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    mlflow_cli = Path(sys.executable).parent / "mlflow"
    env = os.environ | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    env.pop("MLFLOW_TRACKING_URI", None)
    log = (root / "server.log").open("wb")
    process = subprocess.Popen(
        [
            str(mlflow_cli),
            "server",
            "--backend-store-uri",
            f"sqlite:///{root / 'mlflow.db'}",
            "--artifacts-destination",
            str(root / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,  # its own process group: the workers stop with it
    )
    try:
        wait_until_up(url, process, root / "server.log")
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlflow server exited {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"mlflow server not up after {STARTUP_TIMEOUT_S} s:\n{log.read_text()}")


def test_train_register_promote_reject_load_rollback_over_http(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    tracking = TrackingConfig(server, experiment="integration", model_name="over-http")
    registry = ModelRegistry(server, tracking.model_name)
    holdout = trained().split.test

    first = register(tracking)
    assert first.artifact_uri.startswith("mlflow-artifacts:")  # proxied by the server
    run = mlflow.MlflowClient(server).get_run(first.run_id)
    assert run.data.params["horizon_s"] == "40.0"
    assert {a.path for a in mlflow.MlflowClient(server).list_artifacts(first.run_id, "plots")} == {
        "plots/roc.png",
        "plots/reliability.png",
        "plots/importance.png",
    }
    decision = promote(registry, load_candidate(registry), holdout, actor="ci")
    assert decision.promote and registry.aliases() == {CHAMPION: "1"}

    register(tracking, worse())
    rejected = promote(registry, load_candidate(registry), holdout, actor="ci")
    assert not rejected.promote and registry.aliases() == {CHAMPION: "1"}
    assert registry.version_info("2").tags["promotion.decision"] == "rejected"

    register(tracking)
    assert promote(registry, load_candidate(registry, "3"), holdout, actor="ci").promote
    assert registry.aliases() == {CHAMPION: "3", PREVIOUS: "1"}

    scorer = ModelScorer.from_registry(registry)  # downloads the champion over HTTP
    assert scorer.model_version == "3"
    scores = scorer.score(holdout.X)
    assert scores.from_model.all()
    np.testing.assert_allclose(scores.probability, trained().test_probability["model"])

    back = rollback(registry, actor="ci")
    assert (back.from_version, back.to_version) == ("3", "1")
    assert registry.aliases() == {CHAMPION: "1"}
    assert scorer.reload(registry) and scorer.model_version == "1"
