"""The reconcile rule alone: the pool's nodes and the provider's list in, actions out."""

from __future__ import annotations

from features.events import NodeStatus
from service.pool import NodeState, PoolNode
from service.provider import ProviderNode
from service.reconcile import reconcile

NOW = 1_000.0


def node(
    node_id: str | None, state: NodeState, created_at: float, token: str | None = None
) -> PoolNode:
    return PoolNode(node_id, token, state, created_at)


def test_agreeing_views_need_nothing() -> None:
    pool = [node("a", NodeState.READY, 0.0), node("b", NodeState.BOOTING, 990.0)]
    listed = [ProviderNode("a", "ready", 0.0), ProviderNode("b", "booting", 990.0)]
    assert not reconcile(pool, listed, NOW)


def test_an_unknown_live_node_is_adopted_after_the_grace_only() -> None:
    listed = [
        ProviderNode("old", "ready", NOW - 31.0),
        ProviderNode("young", "booting", NOW - 5.0),  # its create's answer may be on its way
        ProviderNode("dead", "terminated", NOW - 100.0),
    ]
    plan = reconcile([], listed, NOW, grace_s=30.0)
    assert plan.adopt == [("old", NodeStatus.READY)]
    assert reconcile([], listed, NOW + 30.0, grace_s=30.0).adopt == [
        ("old", NodeStatus.READY),
        ("young", NodeStatus.BOOTING),
    ]


def test_a_node_the_pool_saw_go_is_terminated_not_adopted() -> None:
    plan = reconcile([], [ProviderNode("gone", "ready", 0.0)], NOW, gone={"gone"})
    assert plan.adopt == [] and plan.terminate == ["gone"]


def test_a_lost_ready_event_is_repaired() -> None:
    plan = reconcile([node("a", NodeState.BOOTING, 0.0)], [ProviderNode("a", "ready", 0.0)], NOW)
    assert plan.ready == ["a"]


def test_a_ready_event_still_on_its_way_is_waited_for() -> None:
    """Ready at the provider for less than the grace: its event may be in the pipeline."""
    pool = [node("a", NodeState.BOOTING, NOW - 40.0)]
    fresh = [ProviderNode("a", "ready", NOW - 40.0, ready_at=NOW - 5.0)]
    assert not reconcile(pool, fresh, NOW, grace_s=30.0)
    stale = [ProviderNode("a", "ready", NOW - 40.0, ready_at=NOW - 31.0)]
    assert reconcile(pool, stale, NOW, grace_s=30.0).ready == ["a"]
    # without ready_at, the node's age stands in for it
    young = [node("b", NodeState.BOOTING, NOW - 10.0)]
    assert not reconcile(young, [ProviderNode("b", "ready", NOW - 10.0)], NOW, grace_s=30.0)


def test_a_delete_that_did_not_happen_is_repeated() -> None:
    plan = reconcile(
        [node("a", NodeState.TERMINATING, 0.0)], [ProviderNode("a", "ready", 0.0)], NOW
    )
    assert plan.terminate == ["a"]


def test_a_node_terminated_within_the_grace_before_the_listing_is_not_terminated_again() -> None:
    """The core decided the termination, its delete is not sent or not
    answered yet, and the provider lists the node alive; only after the grace is it lost."""
    decided = PoolNode("a", None, NodeState.TERMINATING, 0.0, terminating_at=NOW - 1.0)
    alive = [ProviderNode("a", "ready", 0.0)]
    assert not reconcile([decided], alive, NOW, grace_s=30.0)
    # a listing asked for before the decision, applied after it, says nothing of the delete
    assert not reconcile([decided], alive, NOW + 60.0, grace_s=30.0, listed_at=NOW - 2.0)
    assert reconcile([decided], alive, NOW + 29.0, grace_s=30.0).terminate == ["a"]
    old = PoolNode("a", None, NodeState.TERMINATING, 0.0, terminating_at=NOW - 30.0)
    assert reconcile([old], alive, NOW, grace_s=30.0, listed_at=NOW).terminate == ["a"]


def test_a_node_learned_of_after_the_listing_was_asked_for_is_not_forgotten() -> None:
    """A create answered (or a node adopted) after the listing was asked for: the provider
    may have made the node after it listed, so missing from the listing proves nothing."""
    late = PoolNode("a", "req-1", NodeState.BOOTING, NOW - 40.0, known_at=NOW - 1.0)
    assert not reconcile([late], [], NOW, grace_s=30.0, listed_at=NOW - 2.0)
    assert reconcile([late], [], NOW, grace_s=30.0, listed_at=NOW).forget == ["a"]


def test_ages_are_taken_when_the_listing_was_asked_for() -> None:
    unknown = [ProviderNode("x", "ready", NOW - 31.0)]
    assert reconcile([], unknown, NOW, grace_s=30.0).adopt == [("x", NodeStatus.READY)]
    assert not reconcile([], unknown, NOW, grace_s=30.0, listed_at=NOW - 2.0)


def test_nodes_gone_at_the_provider_are_forgotten_after_the_grace() -> None:
    pool = [
        node("listed-dead", NodeState.READY, 0.0),
        node("unlisted", NodeState.ALLOCATED, 0.0),
        node("just-created", NodeState.BOOTING, NOW - 1.0),  # not listed yet
    ]
    plan = reconcile(pool, [ProviderNode("listed-dead", "terminated", 0.0)], NOW, grace_s=30.0)
    assert plan.forget == ["listed-dead", "unlisted"]


def test_requests_without_an_answer_expire() -> None:
    pool = [
        node(None, NodeState.REQUESTED, NOW - 61.0, token="late"),
        node(None, NodeState.REQUESTED, NOW - 10.0, token="recent"),
    ]
    assert reconcile(pool, [], NOW, request_timeout_s=60.0).expire == ["late"]


def test_an_accelerated_clock_keeps_the_waits_wall_floors() -> None:
    """At x240 the 30 s grace and 60 s timeout would be 0.125 and 0.25 wall seconds,
    shorter than an event's or a create answer's way; the floors keep one and ten."""
    pool = [
        node("a", NodeState.BOOTING, NOW - 200.0),
        node(None, NodeState.BOOTING, NOW - 2_000.0, token="t"),
    ]
    listed = [ProviderNode("a", "ready", NOW - 200.0, ready_at=NOW - 200.0)]
    at_x1 = reconcile(pool, listed, NOW)
    assert at_x1.ready == ["a"] and at_x1.expire == ["t"]
    assert not reconcile(pool, listed, NOW, speed=240.0)  # 0.83 and 8.3 wall seconds
    later = reconcile(pool, listed, NOW + 400.0, speed=240.0)
    assert later.ready == ["a"] and later.expire == []
    assert reconcile(pool, listed, NOW + 500.0, speed=240.0).expire == ["t"]


def test_a_node_being_deleted_is_left_to_its_delete_before_it_is_forgotten() -> None:
    """The provider no longer lists a node the core decided to terminate a moment ago: its
    delete's answer and its event are on their way; only after the grace is it forgotten."""
    deleting = PoolNode("a", None, NodeState.TERMINATING, 0.0, terminating_at=NOW - 1.0)
    gone = [ProviderNode("a", "terminated", 0.0)]
    assert not reconcile([deleting], [], NOW, grace_s=30.0)
    assert not reconcile([deleting], gone, NOW, grace_s=30.0)
    assert reconcile([deleting], [], NOW + 29.0, grace_s=30.0).forget == ["a"]
    ready = PoolNode("b", None, NodeState.READY, 0.0)
    assert reconcile([ready], [], NOW, grace_s=30.0).forget == ["b"]
