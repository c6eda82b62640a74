"""``/readyz``: not ready until the service sees events and the first check of the model
registry has settled what scores the users; the body says why not.

Real Redis, a real MLflow SQLite store (made slow by a real lock on its file) or a real
socket that never answers, and the service served by uvicorn on a real socket.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from features.clock import ScaledClock
from models.model_scorer import ModelScorer
from models.registry import CHAMPION, ModelRegistry
from service.app import create_app
from service.live import FIRST_CHECK_PENDING, NO_REGISTRY
from service.model_watch import RegistryWatcher
from simulation.nodes.boot import UniformBoot
from simulation.nodes.fleet import NodeFleet
from tests.lifecycle import register
from tests.servers import loopback_socket, serve
from tests.service.live_harness import SPEED, make_service
from training.tracking import TrackingConfig


@contextmanager
def service_url(
    redis_url: str, prefix: str, watcher: RegistryWatcher | None, *, start: bool = True
) -> Iterator[str]:
    clock = ScaledClock(anchor=time.time(), speed=SPEED)
    fleet = NodeFleet(UniformBoot(10, 29), random.Random(9))
    scorer = None if watcher is None else watcher.scorer
    harness = make_service(redis_url, prefix, clock, fleet, scorer=scorer, watcher=watcher)
    app = create_app(harness.service, manage_lifecycle=start, on_shutdown=[harness.close])
    with serve(app) as url:
        yield url


def readyz(url: str) -> tuple[int, dict[str, Any]]:
    answer = httpx.get(f"{url}/readyz", timeout=5)
    body: dict[str, Any] = answer.json()
    assert body["ready"] == (answer.status_code == 200), body
    assert body["ready"] == (body["reasons"] == []), body
    return answer.status_code, body


def wait_for(
    url: str, check: Callable[[int, dict[str, Any]], bool], what: str, timeout_s: float = 30.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        status, body = readyz(url)
        if check(status, body):
            return body
        assert time.monotonic() < deadline, f"{what}: last answer {status} {body}"
        time.sleep(0.02)


def model_source(url: str) -> dict[str, Any]:
    info: dict[str, Any] = httpx.get(f"{url}/v1/model", timeout=5).json()
    return info


def test_without_a_registry_it_is_ready_once_it_sees_events(
    redis_url: str, redis_client: redis.Redis, key_prefix: str
) -> None:
    with service_url(redis_url, key_prefix, None, start=False) as url:
        status, body = readyz(url)  # never started
        assert status == 503 and not body["sees_events"] and body["model_settled"]
        assert body["reasons"] == ["starting: the saved state is not restored yet"]
    with service_url(redis_url, key_prefix, None) as url:
        body = wait_for(url, lambda status, _: status == 200, "never ready")
        assert body == {
            "ready": True,
            "sees_events": True,
            "model_settled": True,
            "model": NO_REGISTRY,
            "watermark": None,
            "reasons": [],
        }


@pytest.mark.slow
def test_not_ready_until_a_slow_registry_gave_the_champion(
    redis_url: str,
    redis_client: redis.Redis,
    key_prefix: str,
    tracking: TrackingConfig,
    registry: ModelRegistry,
    mlflow_root: Path,
) -> None:
    version = register(tracking).version
    registry.set_alias(CHAMPION, version)
    watcher = RegistryWatcher(
        ModelScorer(), ModelRegistry(tracking.tracking_uri, tracking.model_name)
    )
    # Another writer holds the store's file: every read waits (MLflow's busy timeout: 20 s).
    with closing(sqlite3.connect(mlflow_root / "mlflow.db", isolation_level=None)) as lock:
        lock.execute("BEGIN EXCLUSIVE")
        try:
            with service_url(redis_url, key_prefix, watcher) as url:
                body = wait_for(url, lambda _, b: b["sees_events"], "never saw events")
                time.sleep(0.5)  # still pending: the check waits on the store
                status, body = readyz(url)
                assert status == 503, body
                assert body["sees_events"] and not body["model_settled"]
                assert body["model"] == FIRST_CHECK_PENDING
                assert body["reasons"] == [FIRST_CHECK_PENDING]
                assert model_source(url)["source"] == "heuristic"
                lock.execute("ROLLBACK")
                body = wait_for(url, lambda status, _: status == 200, "never ready")
                # ready means the champion is served, not that it will be soon
                info = model_source(url)
                assert (info["source"], info["version"]) == ("model", version)
                assert body["model"] == f"serving {tracking.model_name!r} version {version}"
        finally:
            if lock.in_transaction:
                lock.execute("ROLLBACK")


def test_ready_saying_why_when_the_registry_has_no_champion(
    redis_url: str, redis_client: redis.Redis, key_prefix: str, registry: ModelRegistry
) -> None:
    watcher = RegistryWatcher(ModelScorer(), registry)  # a model name nothing registered
    with service_url(redis_url, key_prefix, watcher) as url:
        body = wait_for(url, lambda status, _: status == 200, "never ready")
        assert body["model_settled"] and body["reasons"] == []
        assert body["model"] == (
            f"serving the heuristic; {registry.model_name!r} has no version with alias {CHAMPION!r}"
        )
        assert model_source(url)["fallback_reason"] == "no_model"
        metrics = httpx.get(f"{url}/metrics", timeout=5).text
        assert "\nprovisioner_model_loaded 0.0\n" in metrics


@pytest.mark.slow
def test_a_registry_that_does_not_answer_holds_readiness_until_the_check_gives_up(
    redis_url: str,
    redis_client: redis.Redis,
    key_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with closing(loopback_socket()) as silent:
        silent.listen(16)  # connections are made, and never answered
        _, port = silent.getsockname()
        registry = ModelRegistry(f"http://127.0.0.1:{port}", "connect-model")
        watcher = RegistryWatcher(ModelScorer(), registry)
        with service_url(redis_url, key_prefix, watcher) as url:
            wait_for(url, lambda _, b: b["sees_events"], "never saw events")
            status, body = readyz(url)
            assert status == 503 and body["reasons"] == [FIRST_CHECK_PENDING], body
            body = wait_for(url, lambda status, _: status == 200, "never ready")
            assert body["model"].startswith("serving the heuristic; registry unreachable: ")
            assert model_source(url)["fallback_reason"] == "registry_unavailable"


def test_a_check_that_fails_unexpectedly_settles_and_the_watch_goes_on() -> None:
    """A registry URI whose database driver is not installed raises what the registry does
    not wrap (ImportError here): the check must still settle (or /readyz would wait for
    ever) and say why, and the next check must run."""
    registry = ModelRegistry("postgresql://nobody@127.0.0.1:1/mlflow", "connect-model")
    watcher = RegistryWatcher(ModelScorer(), registry)

    async def twice() -> tuple[str | None, float | None]:
        await watcher.check()
        first, checked = watcher.outcome, watcher.last_check
        await watcher.check()
        assert watcher.last_check is not None and checked is not None
        assert watcher.last_check >= checked
        return first, checked

    first, _ = asyncio.run(twice())
    assert first is not None and first.startswith("serving the heuristic; "), first
    assert watcher.last_error is not None and watcher.last_error in first
    assert watcher.info()["source"] == "heuristic"
