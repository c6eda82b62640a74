"""What the core decides for its shell: a reconciliation applied, restored requests failed, a
follower's commands withdrawn."""

from __future__ import annotations

from features.events import NodeStatus, NodeStatusChanged, UserConnect
from service.commands import Command, RequestNode, TerminateNode
from service.config import ServiceConfig
from service.core import PoolCore
from service.pool import NodeState
from service.reconcile import Reconciliation

T0 = 1_700_000_000.0


class Idle(PoolCore):
    """A core that never asks for anything by itself: only the shell's reports move it."""

    def tick(self, now: float) -> list[Command]:
        return []

    def ask(self, now: float) -> RequestNode:
        return self._request(now)

    def drop(self, node_id: str, now: float) -> TerminateNode:
        return self._terminate(node_id, now)


def booting(core: Idle, token: str, node_id: str) -> None:
    core.node_created(token, node_id, T0)
    core.on_event(NodeStatusChanged(T0, node_id, NodeStatus.BOOTING), T0)


def test_a_reconciliation_adopts_repairs_forgets_and_expires() -> None:
    core = Idle(ServiceConfig())
    booting(core, core.ask(T0).token, "lost-ready")
    booting(core, core.ask(T0).token, "gone")
    late = core.ask(T0).token
    core.on_event(UserConnect(T0, "alice"), T0)
    plan = Reconciliation(
        adopt=[("stranger", NodeStatus.READY)],
        ready=["lost-ready"],
        forget=["gone"],
        expire=[late],
        terminate=["ignored-here"],
    )
    assert core.reconciled(plan, T0 + 60) == []
    pool = core.pool
    states = {n.node_id: n.state for n in pool.nodes()}
    assert states == {"stranger": NodeState.ALLOCATED, "lost-ready": NodeState.READY}
    assert pool.node_of("alice") == "stranger"  # the adopted node served the waiting user
    assert pool.metrics.requests_failed == 1


def test_restored_requests_are_failed_and_named() -> None:
    core = Idle(ServiceConfig())
    first, second = core.ask(T0).token, core.ask(T0).token
    booting(core, first, "n1")
    assert core.expire_requests(T0 + 1) == [second]
    assert core.expire_requests(T0 + 2) == []
    assert [n.node_id for n in core.pool.nodes()] == ["n1"]


def test_a_follower_withdraws_its_requests_and_leaves_terminations_pending() -> None:
    core = Idle(ServiceConfig())
    booting(core, core.ask(T0).token, "n1")
    core.withdraw([core.ask(T0), core.drop("n1", T0)], T0 + 1)
    counts = core.pool.counts()
    assert (counts.requested, counts.terminating) == (0, 1)
    assert core.pool.metrics.requests_failed == 1


def test_each_counted_connect_is_recorded_in_the_windows_as_the_pool_counts_it() -> None:
    core = Idle(ServiceConfig())
    booting(core, core.ask(T0).token, "n1")
    core.on_event(NodeStatusChanged(T0 + 1, "n1", NodeStatus.READY), T0 + 1)
    core.on_event(UserConnect(T0 + 2, "alice"), T0 + 2)  # the idle node: at once
    core.on_event(UserConnect(T0 + 3, "alice"), T0 + 3)  # already connected: no connect
    core.on_event(UserConnect(T0 + 4, "bob"), T0 + 4)  # no idle node: waits
    hour = core.connect_windows.service_level(T0 + 5, 0.99).window("1h")
    report = core.metrics(T0 + 5)
    assert (hour.connects, hour.instant) == (report.connects, report.instant) == (2, 1)
    assert hour.instant_rate == report.instant_rate == 0.5
