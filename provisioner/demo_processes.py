"""The demo's processes: its namespace, the child processes it starts on loopback (node API
simulator, service, live workload) with the settings they share, and how to reach, wait
for and stop them. The demo's steps are the ``provisioner demo`` command
(:mod:`provisioner.cli.demo`):

1. Redis (the embedded server under ``PROVISIONER_HOME`` unless ``REDIS_URL`` is set) and
   the local MLflow store, in a namespace of the demo's own (key prefix ``demo:``, model
   ``demo-connect-likelihood``) that is cleared at the start;
2. a history of the seed workload generated in virtual time and imported into the event
   log; a model trained on it, registered, and promoted to ``champion`` through the gates;
3. the node API simulator, the service and the live workload (the same seed workload,
   carrying on from the history) as processes on loopback, sharing one clock (``--speed``);
4. where to look; Ctrl-C (or ``--duration``) stops every process it started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import redis

from provisioner import wiring
from provisioner.settings import Settings

PREFIX = "demo:"
MODEL_NAME = "demo-connect-likelihood"
EXPERIMENT = "demo"
INSTANCE = "demo"


class DemoError(RuntimeError):
    """A step of the demo failed; the message says which and where its log is."""


@dataclass(frozen=True)
class DemoOptions:
    speed: float = 1.0
    history_hours: float = 24.0
    seed: int = 1
    port: int = 8000
    node_api_port: int = 7777
    duration_s: float | None = None


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]


@dataclass
class Demo:
    """The processes of a running demo and how to reach them."""

    settings: Settings
    options: DemoOptions
    redis_url: str
    anchor: float
    token: str
    children: list[Child] = field(default_factory=list)

    @property
    def service_url(self) -> str:
        return f"http://127.0.0.1:{self.options.port}"

    @property
    def node_api_url(self) -> str:
        return f"http://127.0.0.1:{self.options.node_api_port}"

    def environment(self) -> dict[str, str]:
        """The settings every child runs with: one Redis, one store, one clock."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PROVISIONER_")}
        env.update(
            {
                "REDIS_URL": self.redis_url,
                "PROVISIONER_HOME": str(self.settings.home),
                "MLFLOW_TRACKING_URI": wiring.tracking_uri(self.settings),
                "PROVISIONER_KEY_PREFIX": PREFIX,
                "PROVISIONER_MODEL_NAME": MODEL_NAME,
                "PROVISIONER_EXPERIMENT_NAME": EXPERIMENT,
                "PROVISIONER_INSTANCE": INSTANCE,
                "PROVISIONER_SPEED": repr(self.options.speed),
                "PROVISIONER_CLOCK_ANCHOR": repr(self.anchor),
                "PROVISIONER_ADMIN_TOKEN": self.token,
                "PROVISIONER_MODEL_CHECK_S": "10",
                "PROVISIONER_CHANNEL_PREFIX": PREFIX,
                "PROVISIONER_NODE_API_URL": self.node_api_url,
            }
        )
        return env

    def start(self, name: str, *args: str) -> Child:
        logs = self.settings.home / "demo-logs"
        logs.mkdir(parents=True, exist_ok=True)
        path = logs / f"{name}.log"
        handle = path.open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "provisioner", *args],
            env=self.environment(),
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches the demo, which stops them in order
        )
        child = Child(name, process, path, handle)
        self.children.append(child)
        return child

    def check_alive(self) -> None:
        for child in self.children:
            code = child.process.poll()
            if code is not None:
                raise DemoError(f"{child.name} exited with code {code}; see {child.log_path}")

    def stop(self, timeout_s: float = 15.0) -> None:
        """Stop every child, last started first: SIGTERM, then SIGKILL after a while."""
        for child in reversed(self.children):
            terminate(child.process, timeout_s)
            child.log_file.close()
        self.children.clear()


def terminate(process: subprocess.Popen[bytes], timeout_s: float) -> None:
    """SIGTERM, then SIGKILL if it has not exited after ``timeout_s``; waits for the end."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def free_port(preferred: int) -> int:
    """``preferred`` when it is free on loopback, else any free port."""
    for candidate in (preferred, 0):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return int(probe.getsockname()[1])
    raise DemoError("no free port on 127.0.0.1")


def clear_namespace(client: redis.Redis) -> int:
    keys = list(client.scan_iter(f"{PREFIX}*", count=1000))
    if keys:
        client.delete(*keys)
    return len(keys)


def clear_registered_model(settings: Settings) -> None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(wiring.tracking_uri(settings))
    with contextlib.suppress(MlflowException):
        client.delete_registered_model(MODEL_NAME)


def wait_for(what: str, probe: Callable[[], bool], demo: Demo, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not probe():
        demo.check_alive()
        if time.monotonic() > deadline:
            raise DemoError(f"{what} did not come up within {timeout_s:.0f} s")
        time.sleep(0.2)


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def get_json(url: str) -> Any:
    return httpx.get(url, timeout=5.0).json()


def status(demo: Demo) -> dict[str, Any]:
    """The numbers the demo reports: the pool's metrics and the model in use."""
    pool = get_json(f"{demo.service_url}/v1/pool")
    model = get_json(f"{demo.service_url}/v1/model")
    metrics = pool["metrics"]
    return {
        "connects": metrics["connects"],
        "instant_rate": metrics["instant_rate"],
        "mean_wait_s": metrics["mean_wait_s"],
        "efficiency": metrics["efficiency"],
        "nodes_created": metrics["nodes_created"],
        "nodes": pool["counts"],
        "model_version": model.get("version"),
        "model_source": model.get("source"),
        "fallbacks": model.get("fallbacks", {}),
        "live": live_figures(model.get("live", {})),
    }


LIVE_FIGURES = ("n", "log_loss", "brier", "ece")


def live_figures(live: dict[str, Any]) -> dict[str, Any]:
    """The champion's and the challenger's live figures over the shortest window (None for
    a role nobody holds)."""
    windows = live.get("windows") or []

    def figures(label: str | None) -> dict[str, Any] | None:
        if label is None or not windows:
            return None
        window = live.get("versions", {}).get(label, {}).get("windows", {}).get(windows[0])
        if window is None:
            return None
        return {"version": label, "window": windows[0]} | {k: window[k] for k in LIVE_FIGURES}

    return {
        "champion": figures(live.get("champion")),
        "challenger": figures(live.get("challenger")),
    }
