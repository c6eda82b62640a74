"""The compose file's ``dask`` profile, run as the processes it declares: its scheduler and
its workers (the commands of ``docker-compose.yml``, their compose host names and ports
swapped for loopback ones), and ``provisioner train --dask tcp://…`` against them, as a
user trains against a cluster of their own, from a trace and from a partitioned export
whose partitions the workers read. No Docker engine runs here; the compose model itself is
checked in ``test_compose.py`` where ``docker compose`` runs."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML (MLflow depends on it) has no stubs here

from features.partitioned import write_partitioned
from features.table import EventTable
from features.trace import write_jsonl
from simulation.workloads import generate
from tests.provisioner.cli_runner import home_env, last_json, run_cli
from tests.servers import free_port
from training.dataset import DatasetSpec, build_dataset

ROOT = Path(__file__).resolve().parents[2]
SCHEDULER_PORT = "8786"


def dask_services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())[
        "services"
    ]
    return {name: s for name, s in services.items() if "dask" in s.get("profiles", [])}


def test_the_profile_is_a_scheduler_and_two_workers_of_the_image() -> None:
    services = dask_services()
    assert set(services) == {"dask-scheduler", "dask-worker"}
    scheduler, worker = services["dask-scheduler"], services["dask-worker"]
    assert scheduler["entrypoint"] == ["dask", "scheduler"]
    assert worker["entrypoint"] == ["dask", "worker"]
    assert worker["deploy"]["replicas"] == 2
    assert worker["command"][0] == f"tcp://dask-scheduler:{SCHEDULER_PORT}"
    assert worker["depends_on"] == {"dask-scheduler": {"condition": "service_healthy"}}
    assert "8786" in " ".join(scheduler["healthcheck"]["test"])
    service = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["service"]
    assert scheduler["image"] == worker["image"] == service["image"]


def on_loopback(command: list[str], port: int) -> list[str]:
    """A compose command with the scheduler's host name and port made loopback ones."""
    swapped = {
        f"tcp://dask-scheduler:{SCHEDULER_PORT}": f"tcp://127.0.0.1:{port}",
        SCHEDULER_PORT: str(port),
        "0.0.0.0": "127.0.0.1",
    }
    return [swapped.get(arg, arg) for arg in command]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[str]:
    """The profile's processes on loopback; the scheduler's address."""
    dask = shutil.which("dask", path=str(Path(sys.executable).parent))
    assert dask, "the dask command is not installed beside this Python"
    services, port = dask_services(), free_port()
    scheduler, worker = services["dask-scheduler"], services["dask-worker"]
    commands = [[dask, *scheduler["entrypoint"][1:], *on_loopback(scheduler["command"], port)]]
    commands += [[dask, *worker["entrypoint"][1:], *on_loopback(worker["command"], port)]] * (
        worker["deploy"]["replicas"]
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASK_")}
    started: list[subprocess.Popen[bytes]] = []
    try:
        for k, command in enumerate(commands):
            with (tmp_path / f"dask-{k}.log").open("wb") as log:
                started.append(
                    subprocess.Popen(
                        command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT
                    )
                )
        address = f"tcp://127.0.0.1:{port}"
        from distributed import Client

        with Client(address, timeout=60) as client:  # the job must find every worker
            client.wait_for_workers(worker["deploy"]["replicas"], timeout=60)
        yield address
    finally:
        for process in reversed(started):
            process.send_signal(signal.SIGINT)
        for process in reversed(started):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.mark.slow
@pytest.mark.integration
def test_train_runs_on_the_profile_s_cluster(
    cluster: str, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    trace = tmp_path / "seed.jsonl"
    write_jsonl(trace, generate("seed", hours=3, seed=1))
    env = home_env(home) | {"PROVISIONER_DASK": cluster, "PROVISIONER_DASK_TIMEOUT_S": "60"}
    result = run_cli("train", "--trace", str(trace), env=env, timeout=240)
    assert f"Dask at {cluster}: 2 worker(s)" in result.stderr
    trained = last_json(result)
    assert trained["version"] == "1" and trained["model_type"] == "classifier"
    table = EventTable.from_events(generate("seed", hours=3, seed=1))
    rows = build_dataset(table, DatasetSpec(horizon_s=trained["horizon_s"]))
    assert trained["data_digest"] == rows.digest()

    # A partitioned export: the workers (processes of their own) read its partitions.
    export = tmp_path / "export"
    events = generate("seed", hours=3, seed=1)
    write_partitioned(export, events, 3, since=None, until=None, exported_at=0.0)
    result = run_cli("train", "--trace", str(export), env=env, timeout=240)
    assert f"the Dask workers read {export} themselves" in result.stderr
    assert last_json(result)["data_digest"] == rows.digest()
