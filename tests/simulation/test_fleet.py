"""The pure fleet, user time and the efficiency report: no I/O, time handed in."""

from __future__ import annotations

import random
import re

import pytest

from features.events import NodeStatus, UserActivity, UserConnect, UserDisconnect
from simulation.nodes.boot import FixedBoot, UniformBoot, parse_boot_schedule
from simulation.nodes.efficiency import efficiency_report
from simulation.nodes.fleet import LISTED_TERMINATED_S, NodeFleet, Termination, Transition
from simulation.nodes.usertime import UserTime

T0 = 1_700_000_000.0


def fleet(seed: int = 7, boot: UniformBoot | FixedBoot | None = None) -> NodeFleet:
    return NodeFleet(boot or UniformBoot(10, 29), random.Random(seed))


def status(f: NodeFleet, node_id: str) -> NodeStatus:
    node = f.get(node_id)
    assert node is not None
    return node.status


# --- ids ---------------------------------------------------------------------------------


def test_ids_are_node_and_8_hex() -> None:
    f = fleet()
    ids = [f.create(T0 + i).id for i in range(500)]
    assert all(re.fullmatch(r"node-[0-9a-f]{8}", i) for i in ids)
    assert len(set(ids)) == 500


def test_ids_and_boot_times_are_deterministic_by_seed() -> None:
    def run(seed: int) -> list[tuple[str, float]]:
        f = fleet(seed)
        return [(n.id, n.boot_s) for n in (f.create(T0 + i) for i in range(50))]

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_boot_times_follow_the_distribution() -> None:
    f = fleet(3)
    boots = {f.create(T0).boot_s for _ in range(2000)}
    assert boots == {float(s) for s in range(10, 30)}


def test_a_schedule_boots_each_node_with_the_distribution_in_force_at_its_creation() -> None:
    schedule = parse_boot_schedule("fixed:10,uniform:60:180@1,fixed:5@2").starting_at(T0)
    f = NodeFleet(schedule, random.Random(4))
    early = [f.create(T0 + t).boot_s for t in (-30.0, 0.0, 1800.0, 3599.0)]
    middle = [f.create(T0 + 3600.0 + t).boot_s for t in range(0, 3600, 10)]
    late = [f.create(T0 + 7200.0 + t).boot_s for t in (0.0, 1e5)]
    assert early == [10.0] * 4
    assert all(60 <= b <= 180 for b in middle) and len(set(middle)) > 50
    assert late == [5.0, 5.0]
    # a node created just before a change boots as before it, whenever it becomes ready
    node = f.create(T0 + 7199.0)
    assert 60 <= node.boot_s <= 180 and node.due_at == T0 + 7199.0 + node.boot_s


def test_a_single_distribution_and_its_schedule_give_the_same_fleet() -> None:
    def ids_and_boots(f: NodeFleet) -> list[tuple[str, float]]:
        return [(n.id, n.boot_s) for n in (f.create(T0 + 97.0 * i) for i in range(200))]

    single = NodeFleet(UniformBoot(10, 29), random.Random(8))
    scheduled = NodeFleet(parse_boot_schedule("uniform:10:29").starting_at(T0), random.Random(8))
    assert ids_and_boots(single) == ids_and_boots(scheduled)
    assert str(single.boot) == "uniform:10:29"


# --- transitions -------------------------------------------------------------------------


def test_booting_then_ready_at_created_plus_boot() -> None:
    f = fleet(boot=FixedBoot(12))
    node = f.create(T0)
    assert node.status is NodeStatus.BOOTING
    assert f.next_due() == T0 + 12
    assert f.advance(T0 + 11.999) == []
    assert status(f, node.id) is NodeStatus.BOOTING and node.ready_at is None
    assert f.advance(T0 + 12) == [Transition(T0 + 12, node.id, NodeStatus.READY)]
    assert status(f, node.id) is NodeStatus.READY and node.ready_at == T0 + 12
    assert f.advance(T0 + 100) == []  # reported once
    assert f.next_due() is None


def test_advance_returns_due_transitions_in_time_order() -> None:
    f = fleet(11)
    nodes = [f.create(T0 + i * 0.5) for i in range(40)]
    # ties (same due time) in creation order
    due = sorted((n.created_at + n.boot_s, i, n.id) for i, n in enumerate(nodes))
    changes = f.advance(T0 + 20) + f.advance(T0 + 25) + f.advance(T0 + 60)
    assert [(c.at, c.node_id) for c in changes] == [(at, node_id) for at, _, node_id in due]
    assert [c.at for c in changes] == sorted(c.at for c in changes)
    assert all(c.status is NodeStatus.READY for c in changes)
    assert all(n.ready_at == n.created_at + n.boot_s for n in nodes)


def test_next_due_is_the_earliest_booting_node() -> None:
    f = fleet(boot=FixedBoot(10))
    a = f.create(T0)
    f.create(T0 + 3)
    assert f.next_due() == T0 + 10
    f.advance(T0 + 1)
    f.terminate(a.id, T0 + 1)
    assert f.next_due() == T0 + 13


def test_terminated_while_booting_never_becomes_ready() -> None:
    f = fleet(boot=FixedBoot(10))
    node = f.create(T0)
    assert f.terminate(node.id, T0 + 4) is Termination.TERMINATED
    assert node.status is NodeStatus.TERMINATED and node.terminated_at == T0 + 4
    assert f.next_due() is None
    assert f.advance(T0 + 1000) == []
    assert node.ready_at is None


def test_unknown_id() -> None:
    f = fleet()
    f.create(T0)
    assert f.terminate("node-00000000", T0 + 1) is Termination.UNKNOWN
    assert f.get("node-00000000") is None
    assert f.node_seconds(T0 + 1) == 1.0


def test_second_terminate_is_idempotent_and_counts_nothing() -> None:
    f = fleet(boot=FixedBoot(10))
    node = f.create(T0)
    f.advance(T0 + 15)
    assert f.terminate(node.id, T0 + 20) is Termination.TERMINATED
    assert f.terminate(node.id, T0 + 50) is Termination.ALREADY_TERMINATED
    assert node.terminated_at == T0 + 20
    assert f.node_seconds(T0 + 100) == 20.0


def test_listing() -> None:
    f = fleet(boot=FixedBoot(10))
    a, b, c = f.create(T0), f.create(T0 + 1), f.create(T0 + 2)
    f.advance(T0 + 11)
    f.terminate(c.id, T0 + 11)
    assert [n.id for n in f.nodes()] == [a.id, b.id, c.id]
    assert [n.id for n in f.live()] == [a.id, b.id]
    assert [n.status for n in f.nodes()] == [
        NodeStatus.READY,
        NodeStatus.READY,
        NodeStatus.TERMINATED,
    ]
    assert f.node_count == 3


# --- node time ---------------------------------------------------------------------------


def test_node_time_includes_boot_and_counts_live_nodes_to_now() -> None:
    f = fleet(boot=FixedBoot(20))
    a = f.create(T0)
    b = f.create(T0 + 5)
    assert f.node_seconds(T0) == 0.0
    assert f.node_seconds(T0 + 10) == 10.0 + 5.0  # both still booting: boot counts
    f.advance(T0 + 30)
    f.terminate(a.id, T0 + 30)
    assert f.node_seconds(T0 + 30) == 30.0 + 25.0
    assert f.node_seconds(T0 + 40) == 30.0 + 35.0  # a stopped counting, b goes on
    f.terminate(b.id, T0 + 45)
    assert f.node_seconds(T0 + 1000) == 30.0 + 40.0


def test_node_time_of_a_node_killed_during_boot() -> None:
    f = fleet(boot=FixedBoot(20))
    node = f.create(T0)
    f.terminate(node.id, T0 + 3)
    assert f.node_seconds(T0 + 100) == 3.0


# --- user time ---------------------------------------------------------------------------


def test_user_sessions_and_open_sessions_counted_to_now() -> None:
    users = UserTime()
    assert users.connect("u1", T0)
    assert users.connect("u2", T0 + 10)
    assert users.disconnect("u1", T0 + 30)
    assert users.user_seconds(T0 + 40) == 30.0 + 30.0
    assert users.user_seconds(T0 + 50) == 30.0 + 40.0
    assert users.connected() == {"u2"}
    assert users.connect("u1", T0 + 60)  # a second session
    assert users.user_seconds(T0 + 70) == 30.0 + 60.0 + 10.0
    assert users.user_count == 2
    assert users.sessions == 1


def test_duplicate_connect_keeps_the_first_session() -> None:
    users = UserTime()
    users.connect("u1", T0)
    assert not users.connect("u1", T0 + 10)
    users.disconnect("u1", T0 + 20)
    assert users.user_seconds(T0 + 100) == 20.0
    assert users.duplicate_connects == 1
    assert users.user_count == 1


def test_disconnect_without_a_session_is_ignored() -> None:
    users = UserTime()
    assert not users.disconnect("ghost", T0)
    users.connect("u1", T0 + 5)
    users.disconnect("u1", T0 + 8)
    assert not users.disconnect("u1", T0 + 9)  # duplicate disconnect
    assert users.user_seconds(T0 + 100) == 3.0
    assert users.orphan_disconnects == 2
    assert users.user_count == 1  # "ghost" never connected


def test_disconnect_stamped_before_its_connect_counts_zero() -> None:
    users = UserTime()
    users.connect("u1", T0 + 10)
    users.disconnect("u1", T0 + 5)
    assert users.user_seconds(T0 + 100) == 0.0
    users.connect("u2", T0 + 10)
    assert users.user_seconds(T0) == 0.0


def test_apply_events() -> None:
    users = UserTime()
    assert users.apply(UserConnect(T0, "u1"))
    assert not users.apply(UserActivity(T0 + 1, "u1", int(T0)))
    assert users.apply(UserDisconnect(T0 + 12.5, "u1"))
    assert users.user_seconds(T0 + 20) == 12.5


# --- efficiency --------------------------------------------------------------------------


def test_efficiency_report() -> None:
    f = fleet(boot=FixedBoot(10))
    users = UserTime()
    empty = efficiency_report(users, f, T0)
    assert empty.efficiency_percentage == 0.0
    assert empty.model_dump() == {
        "total_user_time_seconds": 0.0,
        "total_node_time_seconds": 0.0,
        "efficiency_percentage": 0.0,
        "user_count": 0,
        "node_count": 0,
    }
    node = f.create(T0)
    f.create(T0 + 20)
    users.connect("u1", T0 + 10)
    users.connect("u2", T0 + 30)
    users.disconnect("u1", T0 + 40)
    f.advance(T0 + 40)
    f.terminate(node.id, T0 + 40)
    report = efficiency_report(users, f, T0 + 50)
    assert report.total_user_time_seconds == 30.0 + 20.0
    assert report.total_node_time_seconds == 40.0 + 30.0
    assert report.efficiency_percentage == pytest.approx(50 / 70 * 100)
    assert (report.user_count, report.node_count) == (2, 2)


def test_a_listing_shows_a_terminated_node_for_a_while_then_not() -> None:
    f = fleet()
    first, second, third = (f.create(now) for now in (0.0, 1.0, 2.0))
    f.terminate(second.id, 100.0)
    f.terminate(first.id, 200.0)
    ids = [n.id for n in f.listed(200.0 + LISTED_TERMINATED_S, LISTED_TERMINATED_S)]
    assert ids == [first.id, third.id]  # oldest first; the second gone an hour and more ago
    assert [n.id for n in f.listed(400.0 + LISTED_TERMINATED_S, LISTED_TERMINATED_S)] == [third.id]
    assert [n.id for n in f.listed(1e9, None)] == [first.id, second.id, third.id]
    # gone from the listing, not from the fleet: a second delete is still recognised
    assert f.terminate(second.id, 1e9) is Termination.ALREADY_TERMINATED
