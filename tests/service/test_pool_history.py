"""The pool's history: the bounded ring and ``GET /v1/history`` over a live service."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis
from fastapi.testclient import TestClient

from features.boot_times import BootTimes
from features.clock import ScaledClock
from features.eventlog import EventLog, LogKeys
from features.events import UserActivity, UserConnect
from service.app import create_app
from service.engine import EngineStatus
from service.feedback import ServiceLevelFeedback
from service.live import LiveService
from service.pool import PoolCounts
from service.pool_history import PoolHistory
from service.service_level import MetricsReport
from simulation.nodes.boot import UniformBoot
from simulation.nodes.fleet import NodeFleet
from tests.service.live_harness import SPEED, bridged, make_service


def status(t: float, *, ready: int = 2, waiting: int = 0, connects: int = 0) -> EngineStatus:
    counts = PoolCounts(
        requested=1, booting=1, ready=ready, allocated=3, terminating=0, waiting=waiting
    )
    metrics = MetricsReport(
        connects=connects,
        instant=connects // 2,
        instant_rate=0.5 if connects else 1.0,
        waited=connects - connects // 2,
        mean_wait_s=3.0,
        p95_wait_s=5.0,
        abandoned=0,
        user_seconds=30.0,
        node_seconds=120.0,
        efficiency=0.25,
        nodes_created=6,
    )
    return EngineStatus(
        at=t,
        counts=counts,
        decided_at=t,
        desired_warm=4,
        need=3.5,
        reason="hold",
        expected_demand=1.25,
        baseline_per_s=0.01,
        scored_users=7,
        tracked_users=9,
        metrics=metrics,
        refused_needs={},
        lead_time_s=39.0,
        boot_times=BootTimes().summary(0.95),
        feedback=ServiceLevelFeedback(0.99).report(),
    )


def test_a_point_holds_what_the_dashboard_draws() -> None:
    history = PoolHistory()
    point = history.record(status(100.0, ready=2, waiting=1, connects=4))
    assert point.to_dict() == {
        "t": 100.0,
        "counts": {
            "requested": 1,
            "booting": 1,
            "ready": 2,
            "allocated": 3,
            "terminating": 0,
            "waiting": 1,
            "live": 7,
            "warm": 3,
        },
        "desired_warm": 4,
        "warm": 3,
        "instant_rate": 0.5,
        "efficiency": 0.25,
        "expected_demand": 1.25,
        "connects": 4,
    }


def test_the_ring_is_bounded_by_points_and_by_time() -> None:
    by_count = PoolHistory(max_points=5)
    for t in range(12):
        by_count.record(status(float(t)))
    assert len(by_count) == 5
    assert [p.t for p in by_count.points()] == [7.0, 8.0, 9.0, 10.0, 11.0]

    by_time = PoolHistory(window_s=30.0, max_points=1000)
    for t in range(0, 200, 10):
        by_time.record(status(float(t)))
    assert [p.t for p in by_time.points()] == [160.0, 170.0, 180.0, 190.0]

    default = PoolHistory()
    for t in range(20_000):
        default.record(status(float(t)))
    assert len(default) <= default.max_points
    assert default.points()[0].t >= 19_999 - default.window_s


def test_since_returns_only_newer_points_in_order() -> None:
    history = PoolHistory()
    assert history.points(since=0.0) == []
    for t in (10.0, 20.0, 30.0, 40.0):
        history.record(status(t))
    assert [p.t for p in history.points(since=20.0)] == [30.0, 40.0]
    assert [p.t for p in history.points(since=25.0)] == [30.0, 40.0]
    assert [p.t for p in history.points(since=5.0)] == [10.0, 20.0, 30.0, 40.0]
    assert history.points(since=40.0) == []
    assert [p["t"] for p in history.to_dict(since=30.0)["points"]] == [40.0]


def test_a_clock_that_steps_back_keeps_the_points_in_order() -> None:
    history = PoolHistory()
    for t in (10.0, 20.0, 30.0):
        history.record(status(t))
    history.record(status(15.0))
    assert [p.t for p in history.points()] == [10.0, 15.0]


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="window_s"):
        PoolHistory(window_s=0.0)
    with pytest.raises(ValueError, match="max_points"):
        PoolHistory(max_points=0)


# -- the endpoint over a live service -----------------------------------------------------------


@contextmanager
def running(
    redis_url: str, redis_client: redis.Redis, prefix: str
) -> Iterator[tuple[TestClient, LiveService]]:
    clock = ScaledClock(anchor=time.time(), speed=SPEED)
    fleet = NodeFleet(UniformBoot(10, 29), random.Random(11))
    harness = make_service(redis_url, prefix, clock, fleet)
    app = create_app(harness.service, on_shutdown=[harness.close])
    log = EventLog(redis_client, LogKeys(prefix))
    with bridged(redis_client, log, prefix), TestClient(app) as client:
        yield client, harness.service


def wait_for_points(client: TestClient, n: int) -> list[dict[str, object]]:
    deadline = time.monotonic() + 10
    while True:
        answer = client.get("/v1/history")
        assert answer.status_code == 200, answer.text
        points: list[dict[str, object]] = answer.json()["points"]
        if len(points) >= n:
            return points
        assert time.monotonic() < deadline, f"{len(points)} points, not {n}"
        time.sleep(0.05)


def test_history_endpoint_grows_each_tick_and_filters_with_since(
    redis_url: str, redis_client: redis.Redis, key_prefix: str
) -> None:
    with running(redis_url, redis_client, key_prefix) as (client, service):
        log = EventLog(redis_client, LogKeys(key_prefix))
        now = service.clock.now()
        log.append_batch([UserActivity(now, "ann", int(now)), UserConnect(now + 0.01, "ann")])
        points = wait_for_points(client, 4)
        body = client.get("/v1/history").json()
        assert body["window_s"] == 7200.0 and body["tick_interval_s"] == 10.0
        assert body["now"] >= body["points"][-1]["t"]
        times = [p["t"] for p in body["points"]]
        assert times == sorted(times) and len(set(times)) == len(times)
        for point in body["points"]:
            assert set(point) == {
                "t",
                "counts",
                "desired_warm",
                "warm",
                "instant_rate",
                "efficiency",
                "expected_demand",
                "connects",
            }
        deadline = time.monotonic() + 10  # ann's connect shows in the points after it
        while client.get("/v1/history").json()["points"][-1]["connects"] != 1:
            assert time.monotonic() < deadline, "the connect never reached the history"
            time.sleep(0.05)

        cut = times[1]
        newer = client.get("/v1/history", params={"since": cut}).json()["points"]
        assert newer and all(p["t"] > cut for p in newer)
        assert [p["t"] for p in newer][: len(times) - 2] == times[2:]
        latest = client.get("/v1/history").json()["points"][-1]["t"]
        assert client.get("/v1/history", params={"since": latest + 1e6}).json()["points"] == []
        assert len(points) >= 4

        # The ring the endpoint serves is bounded: a small one keeps only its last points.
        service.history = PoolHistory(max_points=3)
        wait_for_points(client, 3)
        assert len(client.get("/v1/history").json()["points"]) == 3

        assert client.get("/v1/history", params={"since": "nan"}).status_code == 422
        assert client.get("/v1/history", params={"since": "soon"}).status_code == 422


def test_history_is_503_until_the_service_started(
    redis_url: str, redis_client: redis.Redis, key_prefix: str
) -> None:
    clock = ScaledClock(anchor=time.time(), speed=SPEED)
    harness = make_service(
        redis_url, key_prefix, clock, NodeFleet(UniformBoot(10, 29), random.Random(12))
    )
    app = create_app(harness.service, manage_lifecycle=False, on_shutdown=[harness.close])
    with TestClient(app) as client:
        answer = client.get("/v1/history")
        assert answer.status_code == 503 and "starting" in answer.json()["detail"]
