"""The node pool: states, allocation, adoption, metrics and the plain-data round trip."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.events import NodeStatus
from service.pool import (
    AllocatedNodeError,
    ConnectResult,
    NodePool,
    NodeState,
)

T0 = 1_732_492_800.0
BOOTING, READY, TERMINATED = NodeStatus.BOOTING, NodeStatus.READY, NodeStatus.TERMINATED


def ready_node(pool: NodePool, token: str, node_id: str, at: float, ready_at: float) -> None:
    pool.request(token, at)
    pool.created(token, node_id, at)
    pool.node_status(node_id, BOOTING, at)
    pool.node_status(node_id, READY, ready_at)


def roundtrip(pool: NodePool) -> NodePool:
    return NodePool.from_dict(orjson.loads(orjson.dumps(pool.to_dict())))


# --- node lifecycle ----------------------------------------------------------------------


def test_a_node_goes_through_every_state() -> None:
    pool = NodePool()
    pool.request("t1", T0)
    assert pool.counts().requested == 1 and pool.counts().live == 1
    node = pool.created("t1", "n1", T0 + 1)
    assert node is not None and node.state is NodeState.BOOTING and node.created_at == T0
    pool.node_status("n1", BOOTING, T0 + 1)
    assert pool.counts().booting == 1
    pool.node_status("n1", READY, T0 + 12)
    assert pool.counts().ready == 1
    node = pool.node("n1")
    assert node is not None and node.ready_at == T0 + 12 and node.idle_since == T0 + 12
    pool.terminate("n1", T0 + 20)
    assert pool.counts().terminating == 1 and pool.counts().warm == 0
    pool.node_status("n1", READY, T0 + 21)  # stale: stays terminating
    assert pool.counts().terminating == 1
    pool.node_status("n1", TERMINATED, T0 + 22)
    assert pool.counts().live == 0 and pool.node("n1") is None
    report = pool.report(T0 + 100)
    assert report.node_seconds == pytest.approx(22.0)  # from the request, boot included
    assert report.nodes_created == 1


def test_a_failed_request_leaves_no_node_and_no_node_time() -> None:
    pool = NodePool()
    pool.request("t1", T0)
    assert pool.report(T0 + 5).node_seconds == pytest.approx(5.0)  # in flight: counts
    assert pool.request_failed("t1", T0 + 5)
    assert pool.counts().live == 0
    assert pool.report(T0 + 50).node_seconds == 0.0
    assert pool.metrics.requests_failed == 1
    assert not pool.request_failed("t1", T0 + 6)
    assert pool.created("t1", "n1", T0 + 7) is None  # unknown token now


def test_a_booting_node_can_be_terminated_and_an_allocated_one_cannot() -> None:
    pool = NodePool()
    pool.request("t1", T0)
    pool.created("t1", "n1", T0)
    pool.terminate("n1", T0 + 3)
    pool.deleted("n1", T0 + 4)
    assert pool.counts().live == 0
    ready_node(pool, "t2", "n2", T0, T0 + 10)
    pool.connect("u", T0 + 11)
    with pytest.raises(AllocatedNodeError):
        pool.terminate("n2", T0 + 12)
    with pytest.raises(AllocatedNodeError):
        pool.terminate("nope", T0 + 12)


# --- allocation ----------------------------------------------------------------------------


def test_connect_takes_an_idle_node_at_once_else_waits_first_come_first_served() -> None:
    pool = NodePool()
    ready_node(pool, "t1", "n1", T0, T0 + 10)
    assert pool.connect("a", T0 + 20) is ConnectResult.INSTANT
    assert pool.node_of("a") == "n1"
    assert pool.connect("b", T0 + 21) is ConnectResult.WAITING
    assert pool.connect("c", T0 + 22) is ConnectResult.WAITING
    assert pool.counts().waiting == 2 and pool.counts().warm == -2
    pool.request("t2", T0 + 22)
    pool.created("t2", "n2", T0 + 22)
    assert pool.counts().warm == -1
    pool.node_status("n2", READY, T0 + 40)  # b waited 19 s
    assert pool.node_of("b") == "n2" and pool.is_waiting("c")
    pool.disconnect("a", T0 + 50)  # n1 freed: c waited 28 s
    assert pool.node_of("c") == "n1" and pool.counts().ready == 0
    report = pool.report(T0 + 50)
    assert (report.connects, report.instant, report.waited) == (3, 1, 2)
    assert report.instant_rate == pytest.approx(1 / 3)
    assert report.mean_wait_s == pytest.approx((19 + 28) / 2)


def test_a_freed_node_is_idle_and_the_most_recently_idle_node_is_taken_first() -> None:
    pool = NodePool()
    ready_node(pool, "t1", "n1", T0, T0 + 10)
    ready_node(pool, "t2", "n2", T0, T0 + 15)
    pool.connect("a", T0 + 20)
    assert pool.node_of("a") == "n2"
    pool.disconnect("a", T0 + 30)
    assert [i for i, _ in pool.view().idle] == ["n1", "n2"]  # idle the longest first
    assert dict(pool.view().idle)["n2"] == T0 + 30
    pool.connect("b", T0 + 31)
    assert pool.node_of("b") == "n2"


def test_duplicates_orphans_and_abandoned_connects_are_counted() -> None:
    pool = NodePool()
    assert pool.connect("a", T0) is ConnectResult.WAITING
    assert pool.connect("a", T0 + 1) is ConnectResult.DUPLICATE
    assert pool.disconnect("a", T0 + 10)  # gave up waiting
    assert not pool.disconnect("a", T0 + 11)
    report = pool.report(T0 + 20)
    assert (report.connects, report.instant, report.waited, report.abandoned) == (1, 0, 0, 1)
    assert report.user_seconds == pytest.approx(10.0)
    assert pool.metrics.duplicate_connects == 1 and pool.metrics.orphan_disconnects == 1


def test_a_node_lost_under_a_user_puts_the_user_back_first_without_a_new_wait() -> None:
    pool = NodePool()
    ready_node(pool, "t1", "n1", T0, T0 + 10)
    pool.connect("a", T0 + 20)
    pool.connect("b", T0 + 21)
    pool.node_status("n1", TERMINATED, T0 + 30)
    assert pool.is_waiting("a") and list(pool.to_dict()["waiting"][0][:1]) == ["a"]
    ready_node(pool, "t2", "n2", T0 + 30, T0 + 45)
    assert pool.node_of("a") == "n2" and pool.is_waiting("b")
    report = pool.report(T0 + 45)
    assert (report.connects, report.waited) == (2, 0)


def test_a_user_who_loses_its_node_takes_an_idle_one_at_once() -> None:
    pool = NodePool()
    ready_node(pool, "t1", "n1", T0, T0 + 10)
    pool.connect("a", T0 + 20)
    ready_node(pool, "t2", "n2", T0 + 20, T0 + 30)
    pool.node_status("n1", TERMINATED, T0 + 40)
    assert pool.node_of("a") == "n2" and pool.counts().waiting == 0


# --- nodes we never requested ------------------------------------------------------------


def test_an_unknown_node_is_adopted_in_its_state_and_serves_a_waiting_user() -> None:
    pool = NodePool()
    pool.node_status("x1", BOOTING, T0)
    assert pool.counts().booting == 1
    pool.connect("a", T0 + 5)
    pool.node_status("x2", READY, T0 + 8)  # adopted ready: serves a at once
    assert pool.node_of("a") == "x2"
    pool.node_status("x3", TERMINATED, T0 + 9)  # unknown terminated: ignored
    assert pool.counts().live == 2
    assert pool.metrics.nodes_adopted == 2 and pool.metrics.nodes_created == 2
    node = pool.node("x1")
    assert node is not None and node.adopted and node.created_at == T0


def test_late_events_for_a_gone_node_do_not_adopt_it_again() -> None:
    pool = NodePool()
    ready_node(pool, "t1", "n1", T0, T0 + 10)
    pool.terminate("n1", T0 + 20)
    pool.node_status("n1", TERMINATED, T0 + 21)
    pool.node_status("n1", READY, T0 + 22)
    pool.node_status("n1", BOOTING, T0 + 23)
    assert pool.counts().live == 0


def test_a_status_before_the_create_reply_is_merged_with_the_request() -> None:
    pool = NodePool()
    pool.request("t1", T0)
    pool.node_status("n1", BOOTING, T0 + 1)  # the event beat the HTTP reply
    node = pool.created("t1", "n1", T0 + 2)
    assert node is not None and not node.adopted and node.created_at == T0
    assert pool.counts().live == 1 and pool.counts().requested == 0
    assert pool.metrics.nodes_created == 1 and pool.metrics.nodes_adopted == 0


# --- metrics -------------------------------------------------------------------------------


def test_metrics_by_hand() -> None:
    pool = NodePool()
    ready_node(pool, "t1", "n1", T0, T0 + 20)
    pool.connect("a", T0 + 30)  # instant
    pool.connect("b", T0 + 40)  # waits for n2: 25 s
    ready_node(pool, "t2", "n2", T0 + 40, T0 + 65)
    pool.connect("c", T0 + 70)  # waits for a's node: 10 s
    pool.disconnect("a", T0 + 80)
    pool.disconnect("b", T0 + 100)
    pool.terminate("n2", T0 + 100)
    pool.node_status("n2", TERMINATED, T0 + 100)
    report = pool.report(T0 + 120)
    assert report.instant_rate == pytest.approx(1 / 3)
    assert report.mean_wait_s == pytest.approx(17.5)
    assert report.p95_wait_s == pytest.approx(25.0, rel=0.01)  # rank ceil(0.95 * 2): 25 s
    # users: a 50, b 60, c open 50; nodes: n1 0..120, n2 40..100
    assert report.user_seconds == pytest.approx(160.0)
    assert report.node_seconds == pytest.approx(180.0)
    assert report.efficiency == pytest.approx(160 / 180)


def test_empty_metrics_are_defined() -> None:
    report = NodePool().report(T0)
    assert report.instant_rate == 1.0 and report.efficiency == 0.0
    assert report.mean_wait_s == 0.0 and report.p95_wait_s == 0.0


# --- plain data ----------------------------------------------------------------------------


def test_round_trip_keeps_everything() -> None:
    pool = NodePool()
    ready_node(pool, "t1", "n1", T0, T0 + 10)
    ready_node(pool, "t2", "n2", T0, T0 + 12)
    ready_node(pool, "t3", "n3", T0, T0 + 12)
    pool.request("t4", T0 + 13)
    pool.created("t4", "n4", T0 + 13)
    pool.request("t5", T0 + 13)
    pool.terminate("n4", T0 + 14)
    pool.connect("a", T0 + 14)
    pool.connect("b", T0 + 15)
    pool.disconnect("a", T0 + 16)
    pool.connect("c", T0 + 17)
    pool.connect("d", T0 + 17)
    pool.connect("e", T0 + 18)
    pool.node_status("gone-1", BOOTING, T0 + 18)
    pool.node_status("gone-1", TERMINATED, T0 + 19)
    restored = roundtrip(pool)
    assert restored.to_dict() == pool.to_dict()
    n4 = restored.node("n4")
    assert n4 is not None and (n4.known_at, n4.terminating_at) == (T0 + 13, T0 + 14)
    assert restored.counts() == pool.counts()
    assert set(restored.counts().to_dict().values()) != {0}
    assert restored.report(T0 + 50) == pool.report(T0 + 50)
    for target in (pool, restored):  # and they behave the same afterwards
        target.node_status("gone-1", READY, T0 + 60)
        target.created("t5", "n5", T0 + 60)
        target.node_status("n5", READY, T0 + 70)
        target.disconnect("b", T0 + 71)
    assert restored.to_dict() == pool.to_dict()


OPS = st.lists(
    st.tuples(
        st.sampled_from(["request", "created", "failed", "status", "terminate", "conn", "disc"]),
        st.integers(0, 5),
        st.sampled_from(list(NodeStatus)),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(OPS)
def test_random_operations_keep_the_pool_consistent_and_round_trip(
    ops: list[tuple[str, int, NodeStatus]],
) -> None:
    pool = NodePool()
    twin: NodePool | None = None
    now = T0
    for step, (op, k, status) in enumerate(ops):
        now += 1.0
        for target in (pool, twin) if twin is not None else (pool,):
            apply(target, op, k, status, now)
        if step == len(ops) // 2:
            twin = roundtrip(pool)
        check(pool, now)
    if twin is not None:
        assert twin.to_dict() == pool.to_dict()


def apply(pool: NodePool, op: str, k: int, status: NodeStatus, now: float) -> None:
    token, node_id, user = f"t{k}", f"n{k}", f"u{k}"
    if op == "request" and token not in {n.token for n in pool.nodes()}:
        pool.request(token, now)
    elif op == "created":
        pool.created(token, node_id, now)
    elif op == "failed":
        pool.request_failed(token, now)
    elif op == "status":
        pool.node_status(node_id, status, now)
    elif op == "terminate":
        node = pool.node(node_id)
        if node is not None and node.state in (NodeState.READY, NodeState.BOOTING):
            pool.terminate(node_id, now)
    elif op == "conn":
        pool.connect(user, now)
    elif op == "disc":
        pool.disconnect(user, now)


def check(pool: NodePool, now: float) -> None:
    counts = pool.counts()
    nodes = pool.nodes()
    by_state = {s: sum(1 for n in nodes if n.state is s) for s in NodeState}
    assert by_state[NodeState.REQUESTED] == counts.requested
    assert by_state[NodeState.BOOTING] == counts.booting
    assert by_state[NodeState.READY] == counts.ready
    assert by_state[NodeState.ALLOCATED] == counts.allocated
    assert by_state[NodeState.TERMINATING] == counts.terminating
    assert counts.live == len(nodes)
    assert counts.waiting == 0 or counts.ready == 0  # nobody waits while a node idles
    users = [n.user_id for n in nodes if n.state is NodeState.ALLOCATED]
    assert len(users) == len(set(users))
    assert all(pool.node_of(u) is not None for u in users if u is not None)
    report = pool.report(now)
    assert report.connects == report.instant + report.waited + report.abandoned + (
        sum(1 for w in pool.to_dict()["waiting"] if w[2])
    )
    assert 0.0 <= report.instant_rate <= 1.0
