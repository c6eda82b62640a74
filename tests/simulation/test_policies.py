"""Baseline policies on hand-made traces (decision logs worked out by hand), and the specs."""

from __future__ import annotations

import pytest

from features.events import Event, UserActivity, UserConnect, UserDisconnect, UserEvent
from service.commands import Command
from service.core import DecisionCore
from simulation.nodes.boot import FixedBoot
from simulation.policies import (
    BadPolicySpec,
    PolicyKind,
    PolicySpec,
    SeedDecision,
    SeedRulePolicy,
    StaticPolicy,
    parse_policies,
    parse_policy,
)
from simulation.runner import RunResult, run
from simulation.workloads import DEFAULT_START

T0 = DEFAULT_START


def replay(core: DecisionCore, events: list[UserEvent], seconds: float) -> RunResult:
    return run(events, core, start=T0, end=T0 + seconds, boot=FixedBoot(10), seed=1)


def act(t: float, user: str) -> UserActivity:
    return UserActivity(T0 + t, user, int(T0 + t))


def decisions(policy: SeedRulePolicy) -> list[tuple[float, int, float, int, str]]:
    return [(d.at - T0, d.ready, round(d.score, 6), d.active, d.action) for d in policy.log]


def test_seed_rule_scales_up_as_the_original_rules_say() -> None:
    events: list[UserEvent] = [
        act(0, "a"),
        UserConnect(T0 + 5, "z"),  # no ready node: z waits; the rule requests nothing for it
        UserConnect(T0 + 15, "a"),
        act(25, "b"),
        act(26, "c"),
        UserConnect(T0 + 62, "b"),
        UserDisconnect(T0 + 75, "a"),
        *(act(85 + i / 10, user) for i, user in enumerate("defgh")),
    ]
    policy = SeedRulePolicy()
    result = replay(policy, events, 110)
    # Worked out by hand (boot 10 s; staged scores 0.9/0.6/0.3 within 30 s/2 min/5 min;
    # score and active count over users not connected; booting nodes not counted):
    assert decisions(policy) == [
        (0, 0, 0.9, 1, "up"),  # a active; score 0.9 > 0.7 with 0 ready
        (10, 0, 0.9, 1, "up"),  # node 1 ready at 10 went to z (waiting since 5)
        (20, 0, 0.0, 0, "hold"),  # node 2 ready at 20 went to a (waiting since 15)
        (30, 0, 1.8, 2, "up"),  # b, c active
        (40, 1, 1.8, 2, "up"),  # still fewer than 2 ready
        (50, 2, 1.8, 2, "hold"),  # 2 ready; 2 active is not more than 2 * 2
        (60, 2, 1.2, 2, "hold"),  # b, c now 35 s and 34 s ago: 0.6 each
        (70, 1, 0.6, 1, "hold"),  # b took a node at 62
        (80, 2, 1.2, 2, "hold"),  # a freed its node at 75; a (80 s ago) and c count 0.6
        (90, 2, 5.7, 7, "up"),  # d..h: 7 active > 2 * 2 ready, fewer than 5 ready
        (100, 3, 5.7, 7, "up"),  # 7 > 2 * 3
    ]
    assert (result.connects, result.instant, result.waited) == (3, 1, 2)
    assert result.mean_wait_s == 5.0
    assert result.nodes_created == 6
    # nodes created at 0, 10, 30, 40, 90, 100, all alive at 110
    assert result.node_seconds == pytest.approx(110 + 100 + 80 + 70 + 20 + 10)
    # z 5 -> 110, a 15 -> 75, b 62 -> 110
    assert result.user_seconds == pytest.approx(105 + 60 + 48)
    assert result.efficiency == pytest.approx(213 / 390)


def test_seed_rule_scales_down_after_ten_idle_minutes_of_a_quiet_pool() -> None:
    events: list[UserEvent] = [act(i / 10, f"u{i}") for i in range(11)]
    policy = SeedRulePolicy()
    replay(policy, events, 630)
    log = policy.log
    assert len(log) == 63
    ups = [d.at - T0 for d in log if d.action == "up"]
    assert ups == [0, 10, 20, 30, 40]  # 11 active > 2 * ready until 5 are ready
    downs = [d for d in log if d.action == "down"]
    # quiet (score < 0.3) from 310 s on; the oldest node (ready at 10) idles 600 s at 610
    assert [(d.at - T0, d.ready, d.score) for d in downs] == [(610, 5, 0.0)]
    assert log[31] == SeedDecision(T0 + 310, 5, 0.0, 0, "hold")
    assert log[-1].ready == 4 and log[-1].action == "hold"  # not more than 4 ready: stays
    assert policy.pool.counts().ready == 4


def test_static_pool_replaces_each_node_taken_and_sheds_each_node_freed() -> None:
    events: list[UserEvent] = [UserConnect(T0 + 20, "a"), UserDisconnect(T0 + 50, "a")]
    policy = StaticPolicy(2)
    result = replay(policy, events, 60)
    # t=0: two nodes (ready at 10). a takes one at 20: a third is requested at once (ready
    # at 30). a frees its node at 50: three idle, the one idle the longest (since 10) goes.
    assert (result.connects, result.instant) == (1, 1)
    assert result.nodes_created == 3
    assert result.node_seconds == pytest.approx(50 + 60 + 40)
    assert result.user_seconds == pytest.approx(30)
    counts = policy.pool.counts()
    assert counts.warm == counts.ready == 2


def test_static_zero_boots_on_demand() -> None:
    events: list[UserEvent] = [UserConnect(T0 + 5, "b"), UserDisconnect(T0 + 40, "b")]
    policy = StaticPolicy(0)
    result = replay(policy, events, 60)
    assert (result.instant, result.waited, result.mean_wait_s) == (0, 1, 10.0)
    assert result.node_seconds == pytest.approx(35)  # requested at 5, gone at 40
    assert policy.pool.counts().live == 0


def test_static_pool_holds_k_warm_through_a_busy_trace() -> None:
    events: list[UserEvent] = []
    for i in range(30):
        events.append(UserConnect(T0 + 7 * i, f"u{i}"))
        if i >= 3:
            events.append(UserDisconnect(T0 + 7 * i + 1, f"u{i - 3}"))
    policy = StaticPolicy(3)
    seen: list[int] = []
    on_event = policy.on_event

    def watching(event: Event, now: float) -> list[Command]:
        commands = on_event(event, now)
        if not commands:  # settled: no command in flight
            seen.append(policy.pool.counts().warm)
        return commands

    policy.on_event = watching  # type: ignore[method-assign]
    result = replay(policy, events, 300)
    assert result.connects == 30
    assert set(seen) == {3}


def test_static_pool_size_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        StaticPolicy(-1)


def test_policy_specs_parse_in_order() -> None:
    specs = parse_policies("static:4, seed-rule,heuristic,model:0.995,oracle")
    assert [s.name for s in specs] == [
        "static:4",
        "seed-rule",
        "heuristic",
        "model:0.995",
        "oracle",
    ]
    assert specs[0] == PolicySpec(PolicyKind.STATIC, k=4)
    assert specs[3].target == 0.995
    assert parse_policy("Seed-Rule").kind is PolicyKind.SEED_RULE


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("static", "needs a pool size"),
        ("static:x", "not a whole number"),
        ("static:-1", ">= 0"),
        ("greedy", "unknown policy 'greedy'"),
        ("oracle:3", "takes no argument"),
        ("seed-rule:2", "takes no argument"),
        ("model:1.5", "target must be in"),
        ("heuristic:abc", "not a number"),
        ("static:4,static:4", "listed twice"),
        ("static:4,,oracle", "empty policy"),
        ("", "empty policy"),
    ],
)
def test_bad_policy_specs_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(BadPolicySpec, match=message):
        parse_policies(spec)
