"""The HTTP node provider against real servers on loopback sockets."""

from __future__ import annotations

import asyncio
import logging
import random
import time

import pytest
import redis
import redis.asyncio
from fastapi import FastAPI, Response

from features.clock import ScaledClock
from features.eventlog import EventLog, LogKeys
from models.heuristic import HeuristicScorer
from service.breaker import BreakerState, CircuitBreaker
from service.consumer import StreamConsumer
from service.engine import Engine
from service.http_provider import HttpNodeProvider, RetryPolicy
from service.live import RECONCILE_UNAVAILABLE, LiveService
from service.provider import ProviderError
from service.state_store import StateStore
from simulation.nodes.api import create_node_api
from simulation.nodes.boot import UniformBoot
from simulation.nodes.fleet import NodeFleet
from tests.servers import serve

FAST = RetryPolicy(attempts=3, base_delay_s=0.01, max_delay_s=0.02)


def test_against_the_node_api_simulator(redis_url: str, key_prefix: str) -> None:
    client = redis.asyncio.from_url(redis_url)
    app = create_node_api(
        NodeFleet(UniformBoot(10, 29), random.Random(1)),
        client,
        clock=ScaledClock(anchor=time.time(), speed=100),
        channel_prefix=key_prefix,
    )
    with serve(app, client) as url:

        async def scenario() -> None:
            provider = HttpNodeProvider(url, retry=FAST)
            try:
                node = await provider.create()
                assert node.startswith("node-")
                listed = await provider.list_nodes()
                assert listed is not None and [n.id for n in listed] == [node]
                assert await provider.terminate(node) is True
                assert await provider.terminate(node) is True  # idempotent
                assert await provider.terminate("node-unknown") is False
                after = await provider.list_nodes()
                assert after is not None and after[0].status == "terminated"
            finally:
                await provider.aclose()

        asyncio.run(scenario())


def flaky_api(failures: int, delay_s: float = 0.0) -> tuple[FastAPI, list[str]]:
    app = FastAPI()
    calls: list[str] = []

    @app.post("/api/nodes", status_code=202)
    async def create(response: Response) -> dict[str, str]:
        calls.append("create")
        await asyncio.sleep(delay_s)
        if len(calls) <= failures:
            response.status_code = 503
            return {"detail": "try later"}
        return {"id": f"node-{len(calls):08x}"}

    @app.delete("/api/nodes/{node_id}", status_code=202)
    async def delete(node_id: str, response: Response) -> dict[str, str]:
        calls.append("delete")
        if len(calls) <= failures:
            response.status_code = 500
        return {"id": node_id}

    return app, calls


def test_retries_until_the_api_answers() -> None:
    app, calls = flaky_api(failures=2)
    with serve(app) as url:

        async def scenario() -> str:
            provider = HttpNodeProvider(url, retry=FAST)
            try:
                return await provider.create()
            finally:
                await provider.aclose()

        assert asyncio.run(scenario()) == "node-00000003"
    assert calls == ["create"] * 3


def test_gives_up_with_a_clear_error() -> None:
    app, calls = flaky_api(failures=10)
    with serve(app) as url:

        async def scenario() -> None:
            provider = HttpNodeProvider(url, retry=FAST)
            try:
                await provider.terminate("node-1")
            finally:
                await provider.aclose()

        with pytest.raises(ProviderError, match="gave up after 3 attempts"):
            asyncio.run(scenario())
    assert calls == ["delete"] * 3


def test_a_create_that_timed_out_is_not_repeated() -> None:
    app, calls = flaky_api(failures=0, delay_s=0.5)
    with serve(app) as url:

        async def scenario() -> None:
            provider = HttpNodeProvider(url, timeout_s=0.1, retry=FAST)
            try:
                await provider.create()
            finally:
                await provider.aclose()

        with pytest.raises(ProviderError, match="may have happened"):
            asyncio.run(scenario())
    assert calls == ["create"]


def test_an_api_without_listing_says_so() -> None:
    app, _ = flaky_api(failures=0)
    with serve(app) as url:

        async def scenario() -> object:
            provider = HttpNodeProvider(url, retry=FAST)
            try:
                return await provider.list_nodes()
            finally:
                await provider.aclose()

        assert asyncio.run(scenario()) is None


def test_a_refused_connection_is_retried_then_reported() -> None:
    async def scenario() -> None:
        provider = HttpNodeProvider("http://127.0.0.1:9", retry=FAST)
        try:
            await provider.create()
        finally:
            await provider.aclose()

    with pytest.raises(ProviderError, match="gave up"):
        asyncio.run(scenario())


def test_the_backoff_is_jittered_and_capped() -> None:
    policy = RetryPolicy(attempts=6, base_delay_s=0.2, max_delay_s=1.0)
    rng = random.Random(4)
    for attempt in range(6):
        cap = min(1.0, 0.2 * 2**attempt)
        delays = [policy.delay(attempt, rng) for _ in range(200)]
        assert all(0.0 <= d <= cap for d in delays)
        assert len(set(delays)) == len(delays)  # jittered: no two callers in step
        assert max(delays) > 0.8 * cap  # and spread over the whole range


def test_a_failing_api_opens_the_breaker_and_calls_fail_fast() -> None:
    app, calls = flaky_api(failures=1000)
    breaker = CircuitBreaker(failure_threshold=2, reset_after_s=60.0)
    with serve(app) as url:

        async def scenario() -> list[str]:
            provider = HttpNodeProvider(url, retry=FAST, breaker=breaker)
            errors = []
            try:
                for _ in range(3):
                    try:
                        await provider.create()
                    except ProviderError as e:
                        errors.append(type(e).__name__)
            finally:
                await provider.aclose()
            return errors

        errors = asyncio.run(scenario())
    # Two failed attempts open it; the third attempt and the next calls never leave.
    assert calls == ["create", "create"]
    assert errors == ["CircuitOpen", "CircuitOpen", "CircuitOpen"]
    assert breaker.state is BreakerState.OPEN and breaker.rejected == 3


def test_a_probe_that_succeeds_closes_the_breaker() -> None:
    app, calls = flaky_api(failures=2)
    breaker = CircuitBreaker(failure_threshold=2, reset_after_s=0.0)
    with serve(app) as url:

        async def scenario() -> str:
            provider = HttpNodeProvider(url, retry=FAST, breaker=breaker)
            try:
                return await provider.create()  # fails twice, opens, probes at once: ok
            finally:
                await provider.aclose()

        assert asyncio.run(scenario()) == "node-00000003"
    assert calls == ["create"] * 3
    assert breaker.state is BreakerState.CLOSED and breaker.opened == 1


def test_reconcile_without_a_listing_says_so_once(
    redis_url: str, key_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The original node API has no ``GET /api/nodes`` (405): the live service says once in
    its log, and in ``/v1/pool``'s provider status, that reconcile cannot run, and why."""
    app, calls = flaky_api(failures=0)

    async def scenario(url: str) -> tuple[object, object]:
        client = redis.Redis.from_url(redis_url)
        log = EventLog(client, LogKeys(key_prefix))
        provider = HttpNodeProvider(url, retry=FAST)
        service = LiveService(
            engine_factory=lambda saved, features: Engine(HeuristicScorer(), features=features),
            event_log=log,
            consumer=StreamConsumer(log, "service", "c1"),
            store=StateStore(client, f"{key_prefix}service:state"),
            provider=provider,
            clock=ScaledClock(),
        )
        try:
            before = service.provider_status()["reconcile_unavailable"]
            for _ in range(3):
                await service.reconcile_once()
            return before, service.provider_status()["reconcile_unavailable"]
        finally:
            await provider.aclose()
            client.close()

    with serve(app) as url, caplog.at_level(logging.WARNING, logger="service.live"):
        before, after = asyncio.run(scenario(url))
    assert before is None and after == RECONCILE_UNAVAILABLE
    said = [r for r in caplog.records if "reconcile is unavailable" in r.getMessage()]
    assert len(said) == 1 and "GET /api/nodes" in said[0].getMessage()
    assert calls == []  # nothing was created or deleted on the way
