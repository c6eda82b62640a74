"""The node API failing: 500s, creates whose reply is lost, deletes that never happen, lost
status events, and nodes nobody asked for.

The live service runs in this process (its API served by uvicorn on a real socket, real
Redis, the bridge in a thread) with the HTTP node provider pointed at the node API
simulator behind a fault-injecting proxy, also on a real socket. Retries back off with
jitter, the circuit breaker stops the calls while the API keeps failing, and the reconcile
loop brings the pool back to the node API's true node set: no node leaked, none lost.
"""

from __future__ import annotations

import itertools
import re
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from features.clock import ScaledClock
from features.eventlog import EventLog, LogKeys
from features.events import UserConnect, UserDisconnect
from features.online import OnlineFeatures
from models.heuristic import HeuristicScorer
from provisioner.embedded_redis import EmbeddedRedis
from provisioner.service_wiring import redis_clients
from service.app import create_app
from service.breaker import CircuitBreaker
from service.config import ServiceConfig
from service.consumer import StreamConsumer
from service.engine import Engine
from service.http_provider import HttpNodeProvider, RetryPolicy
from service.live import LiveOptions, LiveService
from service.state_store import StateStore
from tests.integration.faults import BYPASS, NodeApi, node_api, pool_matches_provider, wait_for
from tests.servers import serve
from tests.service.live_harness import bridged

pytestmark = pytest.mark.integration

SPEED = 50.0
RETRY = RetryPolicy(attempts=3, base_delay_s=0.05, max_delay_s=0.2)
GRACE_S = 30.0
"""The reconcile rule's grace for unknown nodes (service.reconcile), clock seconds."""


@contextmanager
def live_service(
    redis_url: str, prefix: str, clock: ScaledClock, api: NodeApi, breaker: CircuitBreaker
) -> Iterator[str]:
    """The live service over the HTTP node provider, its API on a real socket (URL)."""
    client, async_client = redis_clients(redis_url)
    log = EventLog(client, LogKeys(prefix))
    provider = HttpNodeProvider(api.url, timeout_s=0.3, retry=RETRY, breaker=breaker, seed=1)
    config = ServiceConfig(min_ready=2, max_nodes=10)

    def factory(saved: dict[str, Any] | None, features: OnlineFeatures) -> Engine:
        assert saved is None
        return Engine(HeuristicScorer(), config, features=features)

    service = LiveService(
        engine_factory=factory,
        event_log=log,
        consumer=StreamConsumer(log, "service", "c1", claim_idle_ms=0),
        store=StateStore(client, f"{prefix}service:state"),
        provider=provider,
        clock=clock,
        options=LiveOptions(read_block_ms=50, reconcile_every_s=10.0),
    )

    async def close() -> None:
        await provider.aclose()
        await async_client.aclose()

    app = create_app(service, on_shutdown=[close])
    try:
        with bridged(client, log, prefix), serve(app) as url:
            wait_for(lambda: httpx.get(f"{url}/readyz").status_code == 200, "ready")
            wait_for(lambda: pool(url)["counts"]["ready"] >= 2, "two warm nodes")
            yield url
    finally:
        client.close()


def pool(url: str) -> dict[str, Any]:
    answer: dict[str, Any] = httpx.get(f"{url}/v1/pool", timeout=5.0).json()
    return answer


def metric(url: str, name: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=5.0).text
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, flags=re.MULTILINE)
    return float(found[1]) if found else 0.0


@pytest.fixture
def redis_url(embedded_server: EmbeddedRedis) -> str:
    return embedded_server.url


def test_a_failing_api_opens_the_breaker_and_the_pool_converges_after(
    redis_url: str, key_prefix: str
) -> None:
    clock = ScaledClock(anchor=time.time(), speed=SPEED)
    breaker = CircuitBreaker(failure_threshold=3, reset_after_s=1.0)
    figures: dict[str, Any] = {}
    with (
        node_api(redis_url, clock, channel_prefix=key_prefix) as api,
        live_service(redis_url, key_prefix, clock, api, breaker) as url,
    ):
        client, _ = redis_clients(redis_url)
        log = EventLog(client, LogKeys(key_prefix))
        proxy = api.proxy
        proxy.faults.error = {"create", "terminate", "list"}
        failing_since = time.monotonic()
        # Four users connect: two take the warm nodes, two wait and need new ones.
        log.append_batch([UserConnect(clock.now(), f"u{i}") for i in range(4)])
        wait_for(lambda: pool(url)["provider"]["breaker"]["state"] == "open", "breaker open")
        figures["open_after_s"] = round(time.monotonic() - failing_since, 2)
        creates = [hit.at for hit in proxy.hits if hit.kind == "create"][:3]
        figures["first_retry_gaps_s"] = [round(b - a, 3) for a, b in itertools.pairwise(creates)]
        # The API keeps failing for 3 s (150 s on the clock, 15 ticks that want nodes).
        requested = []
        while time.monotonic() < failing_since + 3.0:
            requested.append(pool(url)["counts"]["requested"])
            time.sleep(0.05)
        calls = sum(1 for hit in proxy.hits if hit.at >= failing_since)
        figures["calls_while_failing"] = calls
        figures["max_requested_while_failing"] = max(requested)
        # The calls already out when the third failure came back, then one probe a second
        # (a create, a delete or a listing): a few tens at most, not a retried call per
        # node wanted per tick.
        assert calls <= 25, f"{calls} calls reached a failing API"
        # Refused at once, requests do not pile up: a tick's requests are failed as soon as
        # they are made, so most of the time none is outstanding, and never many.
        assert statistics.median(requested) == 0, requested
        assert max(requested) <= 10, requested
        assert pool(url)["counts"]["waiting"] == 2

        proxy.faults.error = set()
        healed = time.monotonic()
        wait_for(lambda: pool(url)["counts"]["waiting"] == 0, "the waiting users served")
        figures["users_served_after_s"] = round(time.monotonic() - healed, 2)
        wait_for(lambda: pool_matches_provider(url, api), "pool == provider", 20.0)
        figures["converged_after_s"] = round(time.monotonic() - healed, 2)
        report = pool(url)["provider"]["breaker"]
        assert report["state"] == "closed" and report["opened"] >= 1
        assert metric(url, 'provisioner_provider_breaker_state{state="closed"}') == 1.0
        figures["breaker_opened"] = metric(url, "provisioner_provider_breaker_opened")
        figures["breaker_rejected"] = metric(url, "provisioner_provider_breaker_rejected")
        assert figures["breaker_opened"] >= 1 and figures["breaker_rejected"] >= 1
        client.close()
    print("node API 500s figures:", figures)


def test_lost_creates_lost_deletes_and_lost_events_converge(
    redis_url: str, key_prefix: str
) -> None:
    """Creates performed whose replies never come (the client times out), deletes answered
    and never performed, and every status event lost meanwhile: the pool adopts the nodes
    it did not hear of, terminates again those still alive, and ends equal to the API."""
    clock = ScaledClock(anchor=time.time(), speed=SPEED)
    breaker = CircuitBreaker(failure_threshold=5, reset_after_s=0.5)
    figures: dict[str, Any] = {}
    with (
        node_api(redis_url, clock, channel_prefix=key_prefix) as api,
        live_service(redis_url, key_prefix, clock, api, breaker) as url,
    ):
        client, _ = redis_clients(redis_url)
        log = EventLog(client, LogKeys(key_prefix))
        faults = api.proxy.faults
        faults.lose_create_reply_s = 0.6
        faults.drop_terminate = True
        faults.mute = True
        started = time.monotonic()
        users = [f"u{i}" for i in range(5)]
        log.append_batch([UserConnect(clock.now(), user) for user in users])
        wait_for(lambda: api.proxy.count("create", started) >= 3, "creates lost")
        # The users leave: the nodes they would have had are surplus, and go.
        log.append_batch([UserDisconnect(clock.now(), user) for user in users])
        wait_for(lambda: api.proxy.count("terminate", started) >= 2, "deletes lost")
        figures["lost_creates"] = sum(1 for h in api.proxy.hits if h.fault == "lose")
        figures["lost_deletes"] = sum(1 for h in api.proxy.hits if h.fault == "drop")

        def reconciled(action: str) -> float:
            return metric(url, f'provisioner_reconciled_total{{action="{action}"}}')

        # Only a listing can tell the pool now: the status events are still lost, so the
        # nodes whose create replies were lost are adopted by reconcile, not by a late
        # event (on a slow machine a ready event published after the heal would do it).
        wait_for(
            lambda: reconciled("adopt") >= 1 and reconciled("terminate") >= 1,
            "reconcile adopts and terminates again while the faults last",
            30.0,
        )
        faults.lose_create_reply_s = 0.0
        faults.drop_terminate = False
        faults.mute = False
        healed = time.monotonic()
        wait_for(lambda: pool_matches_provider(url, api), "pool == provider", 30.0)
        figures["converged_after_s"] = round(time.monotonic() - healed, 2)
        for action in ("adopt", "ready", "forget", "expire", "terminate"):
            figures[f"reconciled_{action}"] = reconciled(action)
        # Nothing the pool does not know is alive at the API: no leak. The scaler may be
        # acting between the two listings (a node booting or going), so they agree again
        # within a few reconcile rounds rather than at one instant.
        live = wait_for(lambda: pool_matches_provider(url, api), "pool == provider again", 10.0)
        figures["live_nodes"] = len(live[1])
        client.close()
    print("node API lost requests figures:", figures)


def test_a_node_nobody_asked_for_is_adopted_after_the_grace(
    redis_url: str, key_prefix: str
) -> None:
    """The documented rule (docs/node-api.md, service/reconcile.py): a live node the pool
    does not know is adopted once it is older than the grace, then kept or terminated by
    the scaler like any warm node."""
    clock = ScaledClock(anchor=time.time(), speed=SPEED)
    breaker = CircuitBreaker()
    figures: dict[str, Any] = {}
    with (
        node_api(redis_url, clock, channel_prefix=key_prefix) as api,
        live_service(redis_url, key_prefix, clock, api, breaker) as url,
    ):
        api.proxy.faults.mute = True  # its status events are lost: only a listing shows it
        created = httpx.post(f"{api.url}/api/nodes", headers={BYPASS: "1"}).json()["id"]
        born = next(n["created_at"] for n in api.nodes() if n["id"] == created)

        def adopted() -> dict[str, Any] | None:
            return next((n for n in pool(url)["nodes"] if n["node_id"] == created), None)

        node = wait_for(adopted, "the stranger adopted", 20.0)
        api.proxy.faults.mute = False
        figures["adopted_after_clock_s"] = round(node["created_at"] - born, 1)
        assert node["adopted"] and node["created_at"] - born >= GRACE_S

        # One warm node too many now: the scaler terminates one, and the pool and the API
        # agree again.
        def trimmed() -> tuple[dict[str, str], dict[str, str]] | None:
            agreed = pool_matches_provider(url, api)
            return agreed if agreed is not None and len(agreed[1]) == 2 else None

        _, theirs = wait_for(trimmed, "pool == provider, back to two warm nodes", 20.0)
        figures["stranger_kept"] = created in theirs
    print("unknown node figures:", figures)
