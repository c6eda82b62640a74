"""The virtual-time runner: the engine that ships, driven by a workload and a simulated fleet.

A discrete-event loop on a virtual clock, no wall clock and no sleeping. It merges three
sources in time order:

1. the fleet's boot completions (``NodeFleet.advance``), fed to the engine as ``ready``
   ``NodeStatusChanged`` events;
2. the workload's user events (already sorted by ``ts``), fed to ``engine.on_event``;
3. the engine's ticks, every ``tick_interval_s`` from ``start``.

At equal times they run in that order (a node ready at ``t`` serves a connect at ``t``; a
tick at ``t`` sees both). Commands execute at once against the fleet: ``RequestNode`` creates
a node (``engine.node_created``, then its ``booting`` status), ``TerminateNode`` terminates it
(then its ``terminated`` status); commands returned while doing so run too. Events at or
after ``end`` are not fed; everything is measured at ``end``.

A node's boot time is drawn by the fleet from the distribution in force at its creation; a
``BootSchedule`` counts its hours from its own ``start`` (the bench and ``run_workload`` set
it to the ``start`` of the run).

Node time comes from the fleet (create to termination, boot included) and user time from the
node API's ``UserTime``, i.e. the simulated node API's own accounting, the same as the live
``GET /api/efficiency``; the instant rate and waits from the engine's pool (only it knows who
got a node at once). The tests hold the engine's own node and user time equal to these.

    python -m simulation.runner --workload seed --hours 24 --seed 1
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final

import orjson

from features.events import NodeStatus, NodeStatusChanged, UserEvent
from models.heuristic import HeuristicScorer
from models.scoring import Scorer
from service.commands import Command, RequestNode, TerminateNode
from service.config import ServiceConfig
from service.core import DecisionCore
from service.engine import Engine
from service.service_level import idle_share, nodes_per_connect
from simulation.nodes.boot import (
    DEFAULT_BOOT_SPEC,
    BootSchedule,
    BootTime,
    parse_boot_schedule,
)
from simulation.nodes.fleet import NodeFleet, Termination
from simulation.nodes.usertime import UserTime
from simulation.workloads import DEFAULT_START, generate

DEFAULT_HOURS: Final = 24.0
"""Hours of a generated workload run (and scored by the bench) unless told otherwise."""


@dataclass(frozen=True, slots=True)
class RunResult:
    connects: int
    instant_rate: float
    mean_wait_s: float
    p95_wait_s: float
    efficiency: float
    """User-seconds / node-seconds (a fraction)."""
    node_seconds: float
    user_seconds: float
    nodes_created: int
    busy_node_seconds: float
    """Node-seconds in which a node was allocated to a user (from the core's pool)."""
    instant: int
    waited: int
    abandoned: int
    events: int
    """User events fed."""
    ticks: int
    peak_nodes: int | None
    """Most nodes alive at once (None where not counted: the bench's oracle)."""
    start: float
    end: float

    @property
    def nodes_per_connect(self) -> float:
        return nodes_per_connect(self.nodes_created, self.connects)

    @property
    def idle_share(self) -> float:
        """Share of the fleet's node time in which a node served no user."""
        return idle_share(self.busy_node_seconds, self.node_seconds)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {
            "nodes_per_connect": self.nodes_per_connect,
            "idle_share": self.idle_share,
        }


def run(
    events: Iterable[UserEvent],
    engine: DecisionCore,
    *,
    start: float,
    end: float,
    boot: BootTime | BootSchedule,
    seed: int,
    after_tick: Callable[[float], None] | None = None,
) -> RunResult:
    """Replay ``events`` (sorted by ``ts``) in ``[start, end)`` through ``engine``.

    ``after_tick(now)`` runs after each tick's commands: the place of a shell's periodic
    jobs in virtual time (publishing live metrics, a retraining job, a registry check).
    It must not feed the engine itself."""
    if not end > start:
        raise ValueError(f"end must be after start: {start} .. {end}")
    interval = engine.config.tick_interval_s
    fleet = NodeFleet(boot, random.Random(seed))
    users = UserTime()
    pending: deque[Command] = deque()
    live = peak = 0

    def execute(commands: Sequence[Command], now: float) -> None:
        nonlocal live, peak
        pending.extend(commands)
        while pending:
            command = pending.popleft()
            if isinstance(command, RequestNode):
                node = fleet.create(now)
                live += 1
                peak = max(peak, live)
                engine.node_created(command.token, node.id, now)
                status = NodeStatusChanged(now, node.id, NodeStatus.BOOTING)
                pending.extend(engine.on_event(status, now))
            elif isinstance(command, TerminateNode):
                outcome = fleet.terminate(command.node_id, now)
                if outcome is Termination.UNKNOWN:
                    engine.node_deleted(command.node_id, now)
                    continue
                if outcome is Termination.TERMINATED:
                    live -= 1
                status = NodeStatusChanged(now, command.node_id, NodeStatus.TERMINATED)
                pending.extend(engine.on_event(status, now))

    stream = iter(events)
    upcoming = next(stream, None)
    next_tick = start
    fed = ticks = 0
    inf = math.inf
    while True:
        event_at = upcoming.ts if upcoming is not None and upcoming.ts < end else inf
        due = fleet.next_due()
        due_at = due if due is not None and due < end else inf
        tick_at = next_tick if next_tick < end else inf
        now = min(event_at, due_at, tick_at)
        if now == inf:
            break
        if due_at == now:
            for transition in fleet.advance(now):
                status = NodeStatusChanged(transition.at, transition.node_id, transition.status)
                execute(engine.on_event(status, transition.at), transition.at)
        elif event_at == now:
            assert upcoming is not None
            users.apply(upcoming)
            execute(engine.on_event(upcoming, now), now)
            fed += 1
            upcoming = next(stream, None)
        else:
            execute(engine.tick(now), now)
            if after_tick is not None:
                after_tick(now)
            ticks += 1
            next_tick = start + ticks * interval
    report = engine.metrics(end)
    node_seconds = fleet.node_seconds(end)
    user_seconds = users.user_seconds(end)
    return RunResult(
        connects=report.connects,
        instant_rate=report.instant_rate,
        mean_wait_s=report.mean_wait_s,
        p95_wait_s=report.p95_wait_s,
        efficiency=user_seconds / node_seconds if node_seconds > 0 else 0.0,
        node_seconds=node_seconds,
        user_seconds=user_seconds,
        nodes_created=fleet.node_count,
        busy_node_seconds=report.busy_node_seconds,
        instant=report.instant,
        waited=report.waited,
        abandoned=report.abandoned,
        events=fed,
        ticks=ticks,
        peak_nodes=peak,
        start=start,
        end=end,
    )


def run_workload(
    workload: str,
    *,
    hours: float,
    seed: int,
    scorer: Scorer | None = None,
    config: ServiceConfig | None = None,
    boot: str | BootTime | BootSchedule = DEFAULT_BOOT_SPEC,
    start: float = DEFAULT_START,
    users: int | None = None,
    fleet_seed: int | None = None,
) -> RunResult:
    """Generate ``workload`` and replay it through a fresh engine (heuristic scorer by default).

    The fleet's boot times and ids are drawn from ``fleet_seed`` (default: ``seed``). A boot
    schedule (``SPEC[,SPEC@HOURS...]``) counts its hours from ``start``.
    """
    config = config if config is not None else ServiceConfig()
    scorer = scorer if scorer is not None else HeuristicScorer()
    schedule = parse_boot_schedule(boot) if isinstance(boot, str) else boot
    boot_time = schedule.starting_at(start) if isinstance(schedule, BootSchedule) else schedule
    events = generate(workload, hours=hours, seed=seed, start=start, users=users)
    return run(
        events,
        Engine(scorer, config),
        start=start,
        end=start + hours * 3600.0,
        boot=boot_time,
        seed=seed if fleet_seed is None else fleet_seed,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workload", default="seed")
    parser.add_argument("--hours", type=float, default=DEFAULT_HOURS)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--users", type=int, default=None)
    parser.add_argument("--boot", default=DEFAULT_BOOT_SPEC)
    parser.add_argument("--target", type=float, default=ServiceConfig().target_instant_rate)
    parser.add_argument("--max-nodes", type=int, default=ServiceConfig().max_nodes)
    args = parser.parse_args(argv)
    config = ServiceConfig(target_instant_rate=args.target, max_nodes=args.max_nodes)
    began = time.perf_counter()
    result = run_workload(
        args.workload,
        hours=args.hours,
        seed=args.seed,
        config=config,
        boot=args.boot,
        users=args.users,
    )
    line = {**result.to_dict(), "wall_s": round(time.perf_counter() - began, 3)}
    sys.stdout.write(orjson.dumps(line).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
