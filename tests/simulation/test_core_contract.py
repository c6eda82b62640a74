"""The contract every decision core meets, over random traffic and a shell that misbehaves.

Each core (the engine, and the bench's baselines) is driven by random user events, ticks
and a shell whose node requests succeed or fail, and whose nodes boot and go, after random
delays. After every step:

- no node serves two users, and no user holds two nodes;
- the node budget holds (``config.max_nodes``);
- no user waits while a node is idle and ready (a waiting user is served once nodes come);
- the commands agree with the pool: a request's token is pending, with a token never used
  before; a terminated node is terminating, never one that serves a user.

To check another core, append a factory to ``CORE_FACTORIES``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.events import (
    NodeStatus,
    NodeStatusChanged,
    UserActivity,
    UserConnect,
    UserDisconnect,
    UserEvent,
)
from models.heuristic import HeuristicScorer
from service.commands import Command, RequestNode
from service.config import ServiceConfig
from service.core import PoolCore
from service.engine import Engine
from service.pool import NodeState
from simulation.policies import SeedRulePolicy, StaticPolicy
from simulation.workloads import DEFAULT_START

CoreFactory = Callable[[ServiceConfig], PoolCore]

CORE_FACTORIES: list[tuple[str, CoreFactory]] = [
    ("engine", lambda config: Engine(HeuristicScorer(), config)),
    ("static:0", lambda config: StaticPolicy(0, config)),
    ("static:3", lambda config: StaticPolicy(3, config)),
    ("seed-rule", SeedRulePolicy),
]
"""(name, factory) of every decision core under the contract; append new cores here."""


@dataclass
class Shell:
    """Executes a core's commands late and unreliably, and checks them as they come."""

    core: PoolCore
    rng: random.Random
    now: float = DEFAULT_START
    due: list[tuple[float, int, Callable[[], list[Command]]]] = field(default_factory=list)
    tokens: set[str] = field(default_factory=set)
    nodes: int = 0
    order: int = 0

    def later(self, delay: float, action: Callable[[], list[Command]]) -> None:
        self.order += 1
        self.due.append((self.now + delay, self.order, action))

    def execute(self, commands: list[Command]) -> None:
        pool = self.core.pool
        for command in commands:
            if isinstance(command, RequestNode):
                assert command.token not in self.tokens, "a request token was used twice"
                self.tokens.add(command.token)
                pending = [n for n in pool.nodes() if n.token == command.token]
                assert [n.state for n in pending] == [NodeState.REQUESTED]
                self.later(self.rng.uniform(0, 20), self._answer(command.token))
            else:
                node = pool.node(command.node_id)
                assert node is not None and node.state is NodeState.TERMINATING
                assert node.user_id is None
                self.later(self.rng.uniform(0, 20), self._gone(command.node_id))
        self.check()

    def _answer(self, token: str) -> Callable[[], list[Command]]:
        def answer() -> list[Command]:
            if self.rng.random() < 0.2:
                self.core.request_failed(token, self.now)
                return []
            self.nodes += 1
            node_id = f"node-{self.nodes}"
            self.core.node_created(token, node_id, self.now)
            commands = self._status(node_id, NodeStatus.BOOTING)()
            self.later(self.rng.uniform(1, 60), self._status(node_id, NodeStatus.READY))
            return commands

        return answer

    def _status(self, node_id: str, status: NodeStatus) -> Callable[[], list[Command]]:
        def report() -> list[Command]:
            return self.core.on_event(NodeStatusChanged(self.now, node_id, status), self.now)

        return report

    def _gone(self, node_id: str) -> Callable[[], list[Command]]:
        def gone() -> list[Command]:
            if self.rng.random() < 0.5:
                self.core.node_deleted(node_id, self.now)
                return []
            return self._status(node_id, NodeStatus.TERMINATED)()

        return gone

    def run_due(self) -> None:
        """Run what is due by now, in time order (including what comes due meanwhile)."""
        while True:
            self.due.sort()
            if not self.due or self.due[0][0] > self.now:
                return
            _, _, action = self.due.pop(0)
            self.execute(action())

    def check(self) -> None:
        pool = self.core.pool
        holders = [n.user_id for n in pool.nodes() if n.user_id is not None]
        assert len(holders) == len(set(holders)), "a user holds two nodes"
        for user in holders:
            node_id = pool.node_of(user)
            assert node_id is not None
            node = pool.node(node_id)
            assert node is not None and node.user_id == user, "a node serves two users"
        counts = pool.counts()
        assert counts.live <= self.core.config.max_nodes, "over the node budget"
        assert counts.ready == 0 or counts.waiting == 0, "a user waits beside an idle node"


def user_event(rng: random.Random, now: float, users: int) -> UserEvent:
    user = f"u{rng.randrange(users)}"
    kind = rng.random()
    if kind < 0.5:
        return UserActivity(now, user, int(now))
    if kind < 0.75:
        return UserConnect(now, user)
    return UserDisconnect(now, user)


@pytest.mark.parametrize(
    "factory", [f for _, f in CORE_FACTORIES], ids=[n for n, _ in CORE_FACTORIES]
)
@settings(max_examples=100, deadline=None, derandomize=True)
@given(
    seed=st.integers(0, 2**32 - 1),
    users=st.integers(1, 30),
    max_nodes=st.integers(1, 12),
    steps=st.integers(50, 600),
)
def test_random_traffic_keeps_the_contract(
    factory: CoreFactory, seed: int, users: int, max_nodes: int, steps: int
) -> None:
    config = ServiceConfig(max_nodes=max_nodes, min_ready=1, max_idle_s=60.0)
    shell = Shell(factory(config), random.Random(seed))
    next_tick = shell.now
    for _ in range(steps):
        shell.now += shell.rng.expovariate(1 / 3.0)
        shell.run_due()
        if shell.now >= next_tick:
            shell.execute(shell.core.tick(shell.now))
            next_tick += config.tick_interval_s
        event = user_event(shell.rng, shell.now, users)
        shell.execute(shell.core.on_event(event, shell.now))
    # then quiet: every answer comes, ticks go on, and the pool settles
    for _ in range(30):
        shell.now += config.tick_interval_s
        shell.run_due()
        shell.execute(shell.core.tick(shell.now))
    report = shell.core.metrics(shell.now)
    still_waiting = shell.core.pool.counts().waiting
    assert report.instant + report.waited + report.abandoned + still_waiting == report.connects
    # the core's connect windows count as the pool does: the longest one holds the whole run
    level = shell.core.connect_windows.service_level(shell.now, config.target_instant_rate)
    longest = level.windows[-1]
    assert shell.now - DEFAULT_START < longest.seconds
    assert (longest.connects, longest.instant) == (report.connects, report.instant)
