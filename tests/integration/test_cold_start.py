"""A fresh deployment serves its first minutes: no history, no boot seen, users never seen.

For each of three seeds, a new redis-server, the node API simulator on a real socket (10-29 s
boots) and ``provisioner serve`` as a real process start empty, on an accelerated clock. The
seed workload's first ten virtual minutes (it opens with most of its users arriving) are then
published live on pub/sub under user ids the service never saw, and the service bridges them
into its event log. It must serve 0.97 or more of those connects at once, three seeds counted
together: cautious while it knows nothing (the boot prior, the baseline of unforeseen
connects measured over seconds), lean once evidence is there.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from features.clock import ScaledClock
from features.events import UserConnect, UserEvent
from provisioner.service_wiring import redis_clients
from simulation.workloads import DEFAULT_START
from simulation.workloads.catalog import generate
from simulation.workloads.realtime import publish_realtime
from tests.integration.faults import ServeProcess, node_api, redis_process, serve_env, wait_for

pytestmark = pytest.mark.integration

SPEED = 50.0
MINUTES = 10.0
TARGET = 0.97
HEAD_START_S = 30.0


def fresh_users(seed: int, start: float) -> list[UserEvent]:
    """The seed workload's first minutes from ``start``, under ids never seen before."""
    events = generate("seed", hours=MINUTES / 60.0, seed=seed, start=DEFAULT_START)
    return [
        dataclasses.replace(e, ts=e.ts - DEFAULT_START + start, user_id=f"cold{seed}-{e.user_id}")
        for e in events
    ]


def first_minutes(tmp_path: Path, seed: int) -> dict[str, Any]:
    anchor = time.time()
    clock = ScaledClock(anchor=anchor, speed=SPEED)
    with ExitStack() as stack:
        server = stack.enter_context(redis_process(tmp_path / f"redis-{seed}"))
        api = stack.enter_context(node_api(server.url, clock, seed=seed))
        env = serve_env(tmp_path / f"home-{seed}", server.url, api.url, anchor, SPEED, 50)
        service = stack.enter_context(ServeProcess(env, tmp_path / f"serve-{seed}.log"))
        service.wait_ready()
        # The users arrive half a minute (three ticks) after the service is ready: its first
        # nodes, asked for with nothing known, have had one boot's time.
        start = clock.now() + HEAD_START_S
        events = fresh_users(seed, start)
        connects = sum(isinstance(e, UserConnect) for e in events)
        client, _ = redis_clients(server.url)
        stack.callback(client.close)
        report = publish_realtime(client, clock, events, stop=threading.Event())
        assert report.failed == 0

        def all_counted() -> dict[str, Any] | None:
            pool: dict[str, Any] = service.json("/v1/pool")
            return pool if pool["metrics"]["connects"] >= connects else None

        pool = wait_for(all_counted, f"the service counted {connects} connects", 30.0)
        metrics = pool["metrics"]
        return {
            "seed": seed,
            "connects": metrics["connects"],
            "instant": metrics["instant"],
            "lead_time_s": pool["lead_time_s"],
            "boots_seen": pool["boot_times"]["seen"],
            "target_in_force": pool["feedback"]["target_in_force"],
        }


def test_a_fresh_deployment_serves_its_first_ten_minutes(tmp_path: Path) -> None:
    runs = [first_minutes(tmp_path, seed) for seed in (1, 2, 3)]
    connects = sum(r["connects"] for r in runs)
    instant = sum(r["instant"] for r in runs)
    print("cold start figures:", runs, f"instant {instant}/{connects}")
    assert connects >= 60  # the workload opens with most of its users arriving
    assert all(r["boots_seen"] > 0 for r in runs)
    assert instant / connects >= TARGET
