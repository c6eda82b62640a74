"""The HTTP API over a running live service: real Redis, real MLflow store, real socket."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import redis
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from features.clock import ScaledClock
from features.eventlog import EventLog, LogKeys
from features.events import UserActivity, UserConnect
from models.model_scorer import ModelScorer
from models.registry import CHALLENGER, CHAMPION, ModelRegistry
from service.app import MAX_PREDICT_USERS, create_app
from service.live import LiveOptions, LiveService
from service.model_watch import RegistryWatcher
from simulation.nodes.boot import UniformBoot
from simulation.nodes.fleet import NodeFleet
from tests.lifecycle import register
from tests.servers import serve
from tests.service.live_harness import SPEED, bridged, make_service
from training.tracking import TrackingConfig

TOKEN = "s3cret-token"


@contextmanager
def api(
    redis_url: str,
    redis_client: redis.Redis,
    prefix: str,
    watcher: RegistryWatcher | None,
    challenger: RegistryWatcher | None = None,
    evidence: ModelRegistry | None = None,
    options: LiveOptions | None = None,
) -> Iterator[tuple[TestClient, LiveService]]:
    """A TestClient whose lifespan starts the service (in the client's event loop)."""
    clock = ScaledClock(anchor=time.time(), speed=SPEED)
    fleet = NodeFleet(UniformBoot(10, 29), random.Random(5))
    log = EventLog(redis_client, LogKeys(prefix))
    scorer = watcher.scorer if watcher is not None else None
    harness = make_service(
        redis_url,
        prefix,
        clock,
        fleet,
        scorer=scorer,
        watcher=watcher,
        shadow=None if challenger is None else challenger.scorer,
        challenger=challenger,
        evidence=evidence,
        options=options,
    )
    # The app's lifespan starts the service and, in the same event loop, closes its clients.
    app = create_app(harness.service, admin_token=TOKEN, on_shutdown=[harness.close])
    with bridged(redis_client, log, prefix), TestClient(app) as client:
        deadline = time.monotonic() + 10
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "never ready"
            time.sleep(0.05)
        yield client, harness.service


@pytest.fixture
def champion(tracking: TrackingConfig, registry: ModelRegistry) -> RegistryWatcher:
    version = register(tracking).version
    registry.client.set_registered_model_alias(registry.model_name, CHAMPION, version)
    return RegistryWatcher(ModelScorer(), registry)


def test_endpoints_with_a_champion(
    redis_url: str, redis_client: redis.Redis, key_prefix: str, champion: RegistryWatcher
) -> None:
    log = EventLog(redis_client, LogKeys(key_prefix))
    with api(redis_url, redis_client, key_prefix, champion) as (client, service):
        assert client.get("/healthz").json() == {"status": "ok"}
        # Ready (api() waited for it) only once the first check loaded the champion.
        model = client.get("/v1/model").json()
        assert model["source"] == "model" and model["alias"] == "champion"
        assert client.get("/metrics").text.count("\nprovisioner_model_loaded 1.0\n") == 1
        version = model["version"]
        now = service.clock.now()
        log.append_batch([UserActivity(now, "ann", int(now)), UserConnect(now + 0.01, "bob")])
        deadline = time.monotonic() + 5
        while "ann" not in service.engine.features:
            assert time.monotonic() < deadline
            time.sleep(0.02)

        answer = client.post("/v1/predict", json={"user_ids": ["ann", "never-seen"]})
        assert answer.status_code == 200
        rows = answer.json()
        assert [r["user_id"] for r in rows] == ["ann", "never-seen"]
        for row in rows:
            assert 0.0 <= row["probability"] <= 1.0
            assert row["source"] == "model" and row["model_version"] == version
            assert row["horizon_s"] == 40.0
            assert row["curve"] is None

        timed = client.post("/v1/predict", json={"user_ids": ["ann"], "curve": True}).json()[0]
        curve = timed["curve"]
        assert curve["horizons_s"] == [5.0 * k for k in range(1, 9)]
        assert curve["probabilities"] == sorted(curve["probabilities"])
        assert curve["probabilities"][-1] == pytest.approx(timed["probability"])
        assert curve["median_s"] is None or 0 < curve["median_s"] <= 40.0
        assert (curve["median_s"] is None) == (timed["probability"] < 0.5)
        schema = client.get("/openapi.json").json()["components"]["schemas"]
        assert {"horizons_s", "probabilities", "median_s"} <= set(
            schema["ConnectCurve"]["properties"]
        )

        user = client.get("/v1/users/ann").json()
        assert user["known"] and user["features"]["since_activity_s"] < 60
        assert user["source"] == "model"

        pool = client.get("/v1/pool").json()
        assert set(pool["counts"]) >= {"ready", "booting", "allocated", "waiting"}
        assert "reason" in pool and "nodes" in pool

        efficiency = client.get("/api/efficiency").json()
        assert set(efficiency) == {
            "total_user_time_seconds",
            "total_node_time_seconds",
            "efficiency_percentage",
            "user_count",
            "node_count",
        }
        text = client.get("/metrics").text
        assert "provisioner_events_consumed_total" in text
        assert "provisioner_scorer_fallbacks" in text or "provisioner_ticks_total" in text


def test_the_runaway_figures_are_in_the_pool_and_the_metrics(
    redis_url: str, redis_client: redis.Redis, key_prefix: str
) -> None:
    """Nodes per connect and the idle share, in ``/v1/pool`` and ``/metrics`` alike, and
    the refused needs by reason."""
    log = EventLog(redis_client, LogKeys(key_prefix))
    with api(redis_url, redis_client, key_prefix, None) as (client, service):
        now = service.clock.now()
        log.append_batch([UserActivity(now, "ann", int(now)), UserConnect(now + 0.01, "ann")])
        deadline = time.monotonic() + 10
        while (pool := client.get("/v1/pool").json())["metrics"]["connects"] < 1 or (
            service.engine.last_tick is None or service.engine.last_tick < now + 1
        ):
            assert time.monotonic() < deadline, pool
            time.sleep(0.05)
        metrics = pool["metrics"]
        assert metrics["nodes_per_connect"] == metrics["nodes_created"] / metrics["connects"]
        assert 0.0 < metrics["idle_share"] <= 1.0  # booting nodes serve nobody
        assert pool["refused_needs"] == {}
        text = client.get("/metrics").text
        figures = {
            line.split(" ")[0]: float(line.split(" ")[1])
            for line in text.splitlines()
            if line.startswith("provisioner_") and " " in line
        }
        assert figures["provisioner_nodes_per_connect"] >= 1.0
        assert 0.0 < figures["provisioner_idle_share"] <= 1.0
        assert figures['provisioner_refused_needs{reason="unsupported"}'] == 0.0
        assert figures['provisioner_refused_needs{reason="not_finite"}'] == 0.0


def test_the_closed_loop_is_in_the_pool_and_the_metrics(
    redis_url: str, redis_client: redis.Redis, key_prefix: str
) -> None:
    """The boots learned, the lead time and the target in force, in ``/v1/pool`` and
    ``/metrics`` alike, once a node has booted."""
    with api(redis_url, redis_client, key_prefix, None) as (client, _):

        def figures() -> dict[str, float]:
            return {
                line.split(" ")[0]: float(line.split(" ")[1])
                for line in client.get("/metrics").text.splitlines()
                if line.startswith("provisioner_") and " " in line
            }

        def in_force(pool: dict[str, Any]) -> bool:
            """The lead time follows the boots learned at a tick: a boot seen since the
            last tick (the other warm node's, on a loaded machine) is in the next one."""
            quantile_s = pool["boot_times"]["quantile_s"]
            return quantile_s is not None and math.isclose(
                pool["lead_time_s"], 10.0 + quantile_s, rel_tol=0, abs_tol=1e-6
            )

        deadline = time.monotonic() + 10
        while (seen := figures())["provisioner_boots_seen"] < 1 or not in_force(
            pool := client.get("/v1/pool").json()
        ):
            assert time.monotonic() < deadline, (seen, client.get("/v1/pool").json())
            time.sleep(0.05)
        boots = pool["boot_times"]
        assert boots["seen"] >= 1 and boots["quantile"] == 0.95 and boots["last_s"] > 0
        assert pool["lead_time_s"] == pytest.approx(10.0 + boots["quantile_s"], abs=1e-6)
        assert "no connect yet" in pool["feedback"]["reason"]
        assert seen['provisioner_boot_seconds{quantile="0.95"}'] > 0.0
        assert seen["provisioner_lead_time_seconds"] > 10.0
        assert seen["provisioner_target_in_force"] == pytest.approx(0.99)


def test_bad_requests_get_clear_4xx(
    redis_url: str, redis_client: redis.Redis, key_prefix: str
) -> None:
    with api(redis_url, redis_client, key_prefix, None) as (client, _):
        assert client.post("/v1/predict", json={"user_ids": []}).status_code == 422
        too_many = {"user_ids": [f"u{i}" for i in range(MAX_PREDICT_USERS + 1)]}
        assert client.post("/v1/predict", json=too_many).status_code == 422
        assert client.post("/v1/predict", json={"user_ids": [""]}).status_code == 422
        assert client.post("/v1/predict", json={"users": ["a"]}).status_code == 422
        assert client.post("/v1/predict", content=b"not json").status_code == 422
        huge = b'{"user_ids": ["' + b"x" * 100_000 + b'"]}'
        big = client.post("/v1/predict", content=huge, headers={"content-type": "application/json"})
        assert big.status_code == 413 and "bytes" in big.json()["detail"]
        assert client.get("/v1/users/" + "u" * 300).status_code == 422
        # Without a registry the scorer is the heuristic.
        assert client.get("/v1/model").json()["source"] == "heuristic"
        assert client.post("/v1/model/reload").status_code == 401


def test_reload_needs_the_token_and_swaps_the_champion(
    redis_url: str,
    redis_client: redis.Redis,
    key_prefix: str,
    tracking: TrackingConfig,
    registry: ModelRegistry,
) -> None:
    watcher = RegistryWatcher(ModelScorer(), registry)  # no champion yet: the heuristic
    with api(redis_url, redis_client, key_prefix, watcher) as (client, _):
        assert client.get("/v1/model").json()["source"] == "heuristic"
        version = register(tracking).version
        registry.client.set_registered_model_alias(registry.model_name, CHAMPION, version)
        assert client.post("/v1/model/reload").status_code == 401
        wrong = client.post("/v1/model/reload", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        ok = client.post("/v1/model/reload", headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200
        assert ok.json()["source"] == "model" and ok.json()["version"] == version
        answer = client.post("/v1/predict", json={"user_ids": ["x"]}).json()
        assert answer[0]["source"] == "model" and answer[0]["model_version"] == version


def test_predict_over_a_real_socket(
    redis_url: str, redis_client: redis.Redis, key_prefix: str
) -> None:
    clock = ScaledClock(anchor=time.time(), speed=SPEED)
    fleet = NodeFleet(UniformBoot(10, 29), random.Random(6))

    harness = make_service(redis_url, key_prefix, clock, fleet)
    with serve(create_app(harness.service, on_shutdown=[harness.close])) as url:
        deadline = time.monotonic() + 10
        while httpx.get(f"{url}/readyz").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        answer = httpx.post(f"{url}/v1/predict", json={"user_ids": ["a", "b"]})
        assert answer.status_code == 200 and len(answer.json()) == 2
        assert answer.json()[0]["source"] == "heuristic"


def scraped(text: str) -> dict[tuple[str, str | None], float]:
    """``(name, window label or None) -> value`` of every sample of a /metrics text."""
    return {
        (sample.name, sample.labels.get("window")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_the_service_level_per_window_in_the_pool_and_the_metrics(
    redis_url: str, redis_client: redis.Redis, key_prefix: str
) -> None:
    log = EventLog(redis_client, LogKeys(key_prefix))
    windows = ["5m", "30m", "1h", "6h"]
    with api(redis_url, redis_client, key_prefix, None) as (client, service):
        # No connect yet: no rate and no burn (NaN in /metrics, null in /v1/pool).
        level = client.get("/v1/pool").json()["service_level"]
        assert level["target_instant_rate"] == service.engine.config.target_instant_rate
        assert [w["window"] for w in level["windows"]] == windows
        assert all(
            (w["connects"], w["instant_rate"], w["burn_rate"]) == (0, None, None)
            for w in level["windows"]
        )
        figures = scraped(client.get("/metrics").text)
        assert figures[("provisioner_target_instant_rate", None)] == 0.99
        assert ("provisioner_model_loaded", None) not in figures  # no registry: no model
        for window in windows:
            assert figures[("provisioner_connects_window", window)] == 0
            assert math.isnan(figures[("provisioner_instant_rate_window", window)])
            assert math.isnan(figures[("provisioner_error_budget_burn_rate", window)])

        deadline = time.monotonic() + 10
        while service.engine.pool.counts().ready < 2:
            assert time.monotonic() < deadline, "no warm nodes"
            time.sleep(0.05)
        now = service.clock.now()  # four connects at once on two warm nodes: some wait
        log.append_batch([UserConnect(now + i * 0.01, f"u{i}") for i in range(4)])
        deadline = time.monotonic() + 10
        while service.engine.metrics(service.clock.now()).connects < 4:
            assert time.monotonic() < deadline, "connects not applied"
            time.sleep(0.05)
        pool = client.get("/v1/pool").json()
        metrics, level = pool["metrics"], pool["service_level"]
        assert metrics["connects"] == 4 and 0 < metrics["instant"] < 4
        burn = (1 - metrics["instant_rate"]) / (1 - 0.99)
        figures = scraped(client.get("/metrics").text)
        for window in level["windows"]:
            name = window["window"]
            assert (window["connects"], window["instant"]) == (4, metrics["instant"])
            assert window["instant_rate"] == metrics["instant_rate"]
            assert math.isclose(window["burn_rate"], burn)
            assert figures[("provisioner_connects_window", name)] == 4
            assert figures[("provisioner_instant_rate_window", name)] == metrics["instant_rate"]
            assert math.isclose(figures[("provisioner_error_budget_burn_rate", name)], burn)


def live_figures(text: str) -> dict[tuple[str, str, str, str], float]:
    """``(name, role, version, window) -> value`` of the live metrics in a /metrics text."""
    return {
        (s.name, s.labels["role"], s.labels["version"], s.labels["window"]): s.value
        for family in text_string_to_metric_families(text)
        if family.name.startswith("provisioner_live_")
        for s in family.samples
        if "role" in s.labels
    }


def test_the_challenger_in_shadow_and_both_live_in_the_api_the_metrics_and_mlflow(
    redis_url: str,
    redis_client: redis.Redis,
    key_prefix: str,
    tracking: TrackingConfig,
    registry: ModelRegistry,
) -> None:
    """A champion and a challenger in a real store: the challenger is scored in shadow,
    ``/v1/model`` names it and shows both versions' live metrics (as ``/v1/pool`` and
    ``/metrics`` do), and the leader logs both to their runs at one step."""
    champion_version = register(tracking).version
    challenger_version = register(tracking).version
    watcher = RegistryWatcher(ModelScorer(), registry)
    challenger = RegistryWatcher(ModelScorer(), registry, CHALLENGER, optional=True)
    options = LiveOptions(read_block_ms=50, reconcile_every_s=5.0, live_log_every_s=20.0)
    log = EventLog(redis_client, LogKeys(key_prefix))
    registry.set_alias(CHAMPION, champion_version)
    with api(redis_url, redis_client, key_prefix, watcher, challenger, registry, options) as (
        client,
        service,
    ):
        # Ready with no challenger: none is a normal state, not a failure.
        model = client.get("/v1/model").json()
        assert model["version"] == champion_version
        assert model["challenger"]["version"] is None
        assert model["challenger"]["last_error"] is None
        assert model["challenger"]["alias"] == CHALLENGER
        registry.set_alias(CHALLENGER, challenger_version)
        reload = client.post("/v1/model/reload", headers={"Authorization": f"Bearer {TOKEN}"})
        assert reload.json()["challenger"]["version"] == challenger_version
        assert challenger.outcome == (
            f"challenger: {tracking.model_name!r} version {challenger_version}"
        )

        now = service.clock.now()
        log.append_batch([UserActivity(now + 0.01 * i, f"u{i}", int(now)) for i in range(8)])
        log.append(UserConnect(now + 1.0, "u2"))
        versions = {champion_version, challenger_version}

        def settled() -> dict[str, object]:
            live = client.get("/v1/model").json()["live"]
            hour = {v: live["versions"].get(v, {}).get("windows", {}).get("1h") for v in versions}
            return live if all(w is not None and w["n"] > 0 for w in hour.values()) else {}

        deadline = time.monotonic() + 20
        while not (live := settled()):
            assert time.monotonic() < deadline, client.get("/v1/model").json()["live"]
            time.sleep(0.1)
        assert live["champion"] == champion_version
        assert live["challenger"] == challenger_version
        assert live["windows"] == ["1h", "24h"]
        for version, role in ((champion_version, "champion"), (challenger_version, "challenger")):
            report = live["versions"][version]  # type: ignore[index]
            assert report["role"] == role
            hour = report["windows"]["1h"]
            assert hour["reliability"] and hour["log_loss"] >= 0.0
        pool = client.get("/v1/pool").json()
        assert pool["live"]["champion"] == champion_version
        assert set(pool["live"]["versions"]) >= versions

        figures = live_figures(client.get("/metrics").text)
        hour = service.engine.live(service.clock.now())["versions"][challenger_version]
        assert figures[("provisioner_live_settled", "challenger", challenger_version, "1h")] >= 1
        assert figures[("provisioner_live_settled", "champion", champion_version, "24h")] >= 1
        for name in ("log_loss", "brier", "ece", "base_rate"):
            key = (f"provisioner_live_{name}", "challenger", challenger_version, "1h")
            assert math.isfinite(figures[key]) and figures[key] >= 0.0
        assert hour["role"] == "challenger"
        # the champion's health as a gauge: healthy or not, labelled by its version
        health = pool["live"]["health"]
        degraded = {
            s.labels["version"]: s.value
            for family in text_string_to_metric_families(client.get("/metrics").text)
            if family.name == "provisioner_model_degraded"
            for s in family.samples
        }
        assert degraded == {champion_version: 1.0 if health["degraded"] else 0.0}

        # The leader logs both versions' evidence to their runs, at one step.
        deadline = time.monotonic() + 20
        while (both := registry.common_live_evidence(champion_version, challenger_version)) is None:
            assert time.monotonic() < deadline, "no live evidence logged"
            time.sleep(0.2)
        for logged in both:
            assert logged.n >= 1 and logged.get("live_window_s") == 3600.0
            assert logged.get("log_loss") is not None
        assert service.telemetry.live_evidence_failures._value.get() == 0

        # The alias removed: no challenger any more, and nothing failed.
        registry.delete_alias(CHALLENGER)
        reload = client.post("/v1/model/reload", headers={"Authorization": f"Bearer {TOKEN}"})
        body = reload.json()
        assert body["challenger"]["version"] is None and body["challenger"]["last_error"] is None
        assert challenger.outcome == "no challenger"
        deadline = time.monotonic() + 10
        while client.get("/v1/model").json()["live"]["challenger"] is not None:
            assert time.monotonic() < deadline, "the challenger stayed"
            time.sleep(0.1)
        assert client.get("/readyz").status_code == 200
