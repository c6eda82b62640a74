"""The service process killed (SIGKILL) mid-stream and started again.

``provisioner serve`` runs as a real process against a redis-server this test started and
the node API simulator on a real socket. Users keep sending events while it is killed,
with node requests held in flight at the node API, and with a batch of entries delivered
to the dead process that it never applied. The restarted process must bring back the pool
and the allocations from Redis, apply every entry of the log exactly once (pending ones
included), and neither leak a node nor give a user two.
"""

from __future__ import annotations

import json
import re
import socket
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import redis

from features.clock import ScaledClock
from features.eventlog import EventLog, LogKeys
from features.events import UserActivity, UserConnect
from provisioner.service_wiring import redis_clients
from service.consumer import entry_key
from tests.integration.faults import (
    Feeder,
    ServeProcess,
    alive,
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


def steady_nodes(service: ServeProcess, steady: list[str]) -> dict[str, str] | None:
    nodes = service.json("/v1/pool")["nodes"]
    held = {n["user_id"]: n["node_id"] for n in nodes if n["user_id"] in steady}
    return held if len(held) == len(steady) else None


def acl_setuser(client: redis.Redis, rule: str) -> None:
    """Change what the default user (everyone here) may run."""
    untyped: Any = client
    untyped.execute_command("ACL", "SETUSER", "default", rule)


def watermark_past(service: ServeProcess, entry_id: str) -> bool:
    watermark = service.json("/readyz")["watermark"]
    return watermark is not None and entry_key(watermark) >= entry_key(entry_id)


def test_sigkill_mid_stream_then_restart(tmp_path: Path) -> None:
    anchor = time.time()
    clock = ScaledClock(anchor=anchor, speed=SPEED)
    users = [f"u{i}" for i in range(8)]
    steady = ["s0", "s1"]
    waiting = [f"w{i}" for i in range(4)]
    figures: dict[str, Any] = {}
    with ExitStack() as stack:
        server = stack.enter_context(redis_process(tmp_path / "redis"))
        api = stack.enter_context(node_api(server.url, clock))
        client, _ = redis_clients(server.url)
        stack.callback(client.close)
        log = EventLog(client, LogKeys(PREFIX))
        env = serve_env(tmp_path / "home", server.url, api.url, anchor, SPEED, max_nodes=20)
        first = stack.enter_context(ServeProcess(env, tmp_path / "serve-1.log"))
        figures["first_ready_s"] = round(first.wait_ready(), 2)
        wait_for(lambda: first.json("/v1/pool")["counts"]["ready"] >= 2, "two warm nodes")
        now = clock.now()
        log.append_batch([UserConnect(now, user) for user in steady])
        before = wait_for(lambda: steady_nodes(first, steady), "the steady users hold nodes")

        feeder = Feeder(server.url, PREFIX, clock, users, seed=3).start()
        stack.callback(feeder.stop)
        wait_for(lambda: feeder.appended > 150, "events flowing")
        # A burst of connects makes the service request nodes; the node API holds the
        # requests, so they are in flight when the process dies.
        api.proxy.faults.hold_create_s = 1.0
        now = clock.now()
        log.append_batch([UserConnect(now, user) for user in waiting])
        wait_for(lambda: api.proxy.in_flight > 0, "a node request in flight")
        # Acknowledgements stop landing (the process saves, then dies before acknowledging,
        # batch after batch): the entries it applied stay pending, at or below its watermark.
        acl_setuser(client, "-xack")
        marker = log.append(UserActivity(clock.now(), "m0", int(clock.now())))
        wait_for(lambda: watermark_past(first, marker), "entries applied, not acknowledged")
        dead_pid = first.pid
        first.kill()
        killed_at = clock.now()
        figures["events_before_kill"] = feeder.appended
        # Entries the dead process had been handed and never applied: the group delivers
        # a batch to its consumer name, as it would have just before the kill.
        now = clock.now()
        log.append_batch(
            [UserActivity(now, u, int(now)) for u in users[:5]] + [UserConnect(now, "g0")]
        )
        ghost = f"{socket.gethostname()}-{dead_pid}"
        client.xreadgroup(GROUP, ghost, {log.keys.stream: ">"}, count=100)
        acl_setuser(client, "+xack")
        saved = json.loads(client.get(f"{PREFIX}service:main:state") or b"{}")["watermark"]
        rows: Any = client.xpending_range(log.keys.stream, GROUP, "-", "+", 100_000)
        pending = [row["message_id"].decode() for row in rows]
        applied = [i for i in pending if entry_key(i) <= entry_key(saved)]
        figures["pending_at_restart"] = len(pending)
        figures["pending_already_applied"] = len(applied)
        assert len(applied) >= 1 and len(pending) - len(applied) >= 6
        api.proxy.faults.hold_create_s = 0.0
        wait_for(lambda: api.proxy.in_flight == 0, "the held requests done")
        orphans = {n["id"] for n in api.nodes() if n["created_at"] >= killed_at}
        assert orphans, "no node was created for the requests in flight at the kill"

        second = stack.enter_context(ServeProcess(env, tmp_path / "serve-2.log"))
        figures["restart_ready_s"] = round(second.wait_ready(), 2)
        figures["down_clock_s"] = round(clock.now() - killed_at, 1)
        # The pool and the allocations came back: the steady users keep their nodes. The
        # requests in flight at the kill are not waited for (no task is left to finish
        # them): counted failed at start, so the scaler does not count on them.
        pool = second.json("/v1/pool")
        stale = [
            n for n in pool["nodes"] if n["state"] == "requested" and n["created_at"] < killed_at
        ]
        assert not stale, f"requests from before the kill still pending: {stale}"
        assert steady_nodes(second, steady) == before
        wait_for(lambda: feeder.appended > figures["events_before_kill"] + 60, "more events")
        feeder.stop()
        figures["events_appended"] = feeder.appended

        everyone = [*users, *steady, *waiting, "g0", "m0"]
        expected = check_applied_once(second, client, PREFIX, GROUP, everyone)
        figures["log_entries"] = expected.entries
        check_allocations(second.json("/v1/pool"), expected.connected)
        # No node leaked: the pool and the provider agree on every live node; the nodes
        # created for the requests in flight at the kill were adopted (or terminated as
        # surplus after their adoption).
        started = time.monotonic()
        mine, theirs = wait_for(
            lambda: pool_matches_provider(second.url, api), "pool == provider", 30.0
        )
        figures["converged_s"] = round(time.monotonic() - started, 2)
        figures["live_nodes"] = len(theirs)
        for node in api.nodes():
            if node["id"] in orphans:
                assert node["id"] in mine or node["status"] == "terminated", node
        figures["orphan_nodes"] = len(orphans)
        figures["orphans_alive_in_pool"] = len(orphans & set(mine))
        pool = second.json("/v1/pool")
        check_allocations(pool, expected.connected)
        held = {n["node_id"] for n in pool["nodes"] if n["state"] == "allocated"}
        assert held <= alive(api.nodes())
        metrics = second.json_text("/metrics")
        adopted = re.search(r'provisioner_reconciled_total\{action="adopt"\} (\S+)', metrics)
        figures["adopted_by_reconcile"] = float(adopted[1]) if adopted else 0.0
        started_line = re.search(
            r"(\d+) pending entries taken over, (\d+) orphaned node requests failed",
            second.tail(400),
        )
        assert started_line is not None, second.tail()
        figures["taken_over"] = int(started_line[1])
        figures["orphan_requests_failed"] = int(started_line[2])
        assert figures["taken_over"] == len(pending)
        # Failed at start, not left to reconciliation: a provider without a node listing
        # (the original node API) never expires them otherwise.
        assert figures["orphan_requests_failed"] >= 1
        assert second.stop() == 0
    print("service kill figures:", figures)
