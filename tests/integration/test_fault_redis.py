"""Redis killed (SIGKILL) mid-stream and restarted, or frozen (SIGSTOP) and thawed.

``provisioner serve`` runs as a real process (with its in-process bridge) against a
redis-server this test starts, kills and starts again on the same port and data, and the
node API simulator on a real socket. Before each fault a burst of activity makes the
service scale up; during the fault that activity ages, so a service that went on deciding
would scale down blind. It must not: ``/readyz`` says not ready, ticks are skipped, and no
node is terminated until the event log is back. After recovery the consumer has
reconnected, the bridge has resubscribed, every event in the log has been applied exactly
once in effect, and the scale-down the aged activity calls for does happen.
"""

from __future__ import annotations

import re
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import redis

from features.clock import ScaledClock
from features.eventlog import EventLog, LogKeys
from features.events import Event, UserActivity, UserConnect
from provisioner.service_wiring import redis_clients
from service.consumer import StreamConsumer
from tests.integration.faults import (
    Feeder,
    NodeApi,
    RedisProcess,
    ServeProcess,
    check_allocations,
    check_applied_once,
    node_api,
    pool_matches_provider,
    redis_process,
    serve_env,
    wait_for,
)

pytestmark = pytest.mark.integration

SPEED = 50.0
PREFIX = "pp:"
GROUP = "service-main"
BURST_USERS = [f"b{i}" for i in range(12)]


def metric(service: ServeProcess, name: str) -> float:
    found = re.search(rf"^{name} (\S+)$", service.json_text("/metrics"), flags=re.MULTILINE)
    return float(found[1]) if found else 0.0


def burst(log: EventLog, clock: ScaledClock, service: ServeProcess) -> int:
    """Activity of many users until the service has scaled up, and holds still (nothing
    requested or terminating); the warm nodes then."""
    deadline = time.monotonic() + 20.0
    while True:
        now = clock.now()
        log.append_batch([UserActivity(now, user, int(now)) for user in BURST_USERS])
        counts = service.json("/v1/pool")["counts"]
        if counts["warm"] >= 6 and counts["requested"] == 0 and counts["terminating"] == 0:
            return int(counts["warm"])
        assert time.monotonic() < deadline, f"no scale-up: {counts}"
        time.sleep(0.05)


def terminated_between(api: NodeApi, start: float, end: float) -> list[dict[str, Any]]:
    return [
        n
        for n in api.nodes()
        if n["terminated_at"] is not None and start <= n["terminated_at"] <= end
    ]


def watch_while_blind(service: ServeProcess, until: float) -> dict[str, Any]:
    """Probe ``/readyz`` until ``until`` (monotonic): when it first said 503, and whether
    it said 200 again after that."""
    started = time.monotonic()
    first_503: float | None = None
    probes = ready_again = 0
    while time.monotonic() < until:
        answer = service.get("/readyz")
        assert answer is not None, "the API stopped answering while Redis was down"
        probes += 1
        if answer.status_code == 503 and first_503 is None:
            first_503 = time.monotonic() - started
        elif answer.status_code == 200 and first_503 is not None:
            ready_again += 1
        time.sleep(0.02)
    return {"first_503_s": first_503, "probes": probes, "ready_again": ready_again}


def start(tmp_path: Path, stack: ExitStack, anchor: float) -> tuple[RedisProcess, NodeApi, Any]:
    clock = ScaledClock(anchor=anchor, speed=SPEED)
    server = stack.enter_context(redis_process(tmp_path / "redis"))
    api = stack.enter_context(node_api(server.url, clock))
    env = serve_env(tmp_path / "home", server.url, api.url, anchor, SPEED, max_nodes=20)
    service = stack.enter_context(ServeProcess(env, tmp_path / "serve.log"))
    service.wait_ready()
    wait_for(lambda: service.json("/v1/pool")["counts"]["ready"] >= 2, "two warm nodes")
    return server, api, service


def test_redis_killed_mid_stream_and_restarted(tmp_path: Path) -> None:
    anchor = time.time()
    clock = ScaledClock(anchor=anchor, speed=SPEED)
    figures: dict[str, Any] = {}
    with ExitStack() as stack:
        server, api, service = start(tmp_path, stack, anchor)
        client, _ = redis_clients(server.url)
        stack.callback(client.close)
        log = EventLog(client, LogKeys(PREFIX))
        log.append_batch([UserConnect(clock.now(), user) for user in ("c0", "c1")])
        feeder = Feeder(server.url, PREFIX, clock, [f"u{i}" for i in range(6)], seed=5)
        stack.callback(feeder.stop)
        feeder.start()
        figures["warm_before"] = burst(log, clock, service)

        # Kill Redis while the feeder writes; keep it down ~3.5 s (175 s on the clock).
        killed_at = clock.now()
        down_until = time.monotonic() + 3.5
        server.kill()
        blind = watch_while_blind(service, down_until)
        figures |= {f"down_{k}": v for k, v in blind.items()}
        assert blind["first_503_s"] is not None and blind["first_503_s"] < 2.0
        assert blind["ready_again"] == 0
        pool_while_down = service.json("/v1/pool")
        assert pool_while_down["counts"]["terminating"] == 0

        # Redis is back from here: the service may tick as soon as it has read again,
        # before this test sees /readyz say so (as the freeze test counts from the thaw).
        back_at = clock.now()
        restarted = time.monotonic()
        server.start()
        wait_for(service.is_ready, "ready again")
        figures["recovery_s"] = round(time.monotonic() - restarted, 2)
        blind_ticks = metric(service, "provisioner_ticks_skipped_total")
        figures["ticks_skipped"] = blind_ticks
        assert blind_ticks >= 5  # ~17 ticks fall in the outage
        assert metric(service, "provisioner_event_log_outages_total") == 1
        # No scale-down while the service could not see events.
        figures["terminated_while_blind"] = len(terminated_between(api, killed_at, back_at))
        assert figures["terminated_while_blind"] == 0

        # The bridge inside the service resubscribed: a published message reaches the log.
        publisher, _ = redis_clients(server.url)
        stack.callback(publisher.close)

        def bridged() -> bool:
            publisher.publish("user:activity", '{"user_id": "bridged"}')
            return bool(service.json("/v1/users/bridged")["known"])

        started = time.monotonic()
        wait_for(bridged, "a published message applied", every_s=0.1)
        figures["bridge_back_s"] = round(time.monotonic() - started, 2)

        wait_for(lambda: feeder.appended > 200, "events after recovery")
        feeder.stop()
        figures["events_appended"] = feeder.appended
        figures["events_refused_while_down"] = feeder.refused
        users = [*BURST_USERS, *feeder.users, "c0", "c1", "bridged"]
        expected = check_applied_once(service, client, PREFIX, GROUP, users)
        figures["log_entries"] = expected.entries
        check_allocations(service.json("/v1/pool"), expected.connected)
        # The aged activity does call for a scale-down, now that the service sees again.
        wait_for(lambda: terminated_between(api, back_at, clock.now()), "a scale-down after")
        # Status events lost while Redis was down (boots that ended) are repaired.
        wait_for(lambda: pool_matches_provider(service.url, api), "pool == provider", 30.0)
        figures["scaled_down_after"] = len(terminated_between(api, back_at, clock.now()))
        assert service.stop() == 0
    print("redis kill figures:", figures)


def test_redis_frozen_then_thawed(tmp_path: Path) -> None:
    """A Redis that hangs instead of dying: reads block rather than fail. The service must
    not decide on what it saw before the freeze until Redis answers again."""
    anchor = time.time()
    clock = ScaledClock(anchor=anchor, speed=SPEED)
    figures: dict[str, Any] = {}
    with ExitStack() as stack:
        server, api, service = start(tmp_path, stack, anchor)
        client, _ = redis_clients(server.url)
        stack.callback(client.close)
        log = EventLog(client, LogKeys(PREFIX))
        figures["warm_before"] = burst(log, clock, service)

        frozen_at = clock.now()
        server.freeze()
        stack.callback(server.thaw)
        # 6 s frozen: 300 s on the clock, the burst's activity is then worthless.
        blind = watch_while_blind(service, time.monotonic() + 6.0)
        figures |= {f"frozen_{k}": v for k, v in blind.items()}
        assert blind["first_503_s"] is not None and blind["ready_again"] == 0
        thawed_at = clock.now()
        server.thaw()
        wait_for(service.is_ready, "ready again")
        figures["terminated_while_frozen"] = len(terminated_between(api, frozen_at, thawed_at))
        assert figures["terminated_while_frozen"] == 0
        wait_for(lambda: terminated_between(api, thawed_at, clock.now()), "a scale-down after")
        figures["scaled_down_after"] = len(terminated_between(api, thawed_at, clock.now()))
        assert service.stop() == 0
    print("redis freeze figures:", figures)


def test_a_lost_read_reply_is_not_overtaken_by_newer_entries(tmp_path: Path) -> None:
    """The group handed entries to the consumer, the reply never arrived, and Redis went
    away. Once it is back, the consumer reads its own pending entries before new ones, so
    applying by watermark neither skips nor repeats any."""
    with redis_process(tmp_path / "redis") as server:
        client, _ = redis_clients(server.url)
        try:
            log = EventLog(client, LogKeys(PREFIX))
            consumer = StreamConsumer(log, "service", "c", count=10)
            consumer.ensure_group()
            now = time.time()
            first = [UserActivity(now, f"a{i}", int(now)) for i in range(5)]
            log.append_batch(first)
            assert len(consumer.read()) == 5  # the reply that was lost: nothing applied
            server.kill()
            with pytest.raises(redis.RedisError):
                consumer.read()
            server.start()
            later = [UserActivity(now + 1, f"b{i}", int(now + 1)) for i in range(5)]
            log.append_batch(later)
            applied: list[Event] = []
            watermark: str | None = None
            while len(delivery := consumer.read()):
                events, ids = delivery.after(watermark)
                applied += events
                watermark = ids[-1] if ids else watermark
                consumer.ack(delivery.all_ids)
            assert applied == first + later
            assert consumer.pending() == 0
        finally:
            client.close()
