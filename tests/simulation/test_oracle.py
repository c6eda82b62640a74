from __future__ import annotations

import pytest

from features.events import Event, UserActivity, UserConnect, UserDisconnect
from simulation.nodes.boot import BootSchedule, FixedBoot, UniformBoot, parse_boot_schedule
from simulation.oracle import oracle
from simulation.workloads import generate

BOOT = FixedBoot(20.0)


def test_one_session_costs_its_boot_and_its_length() -> None:
    events: list[Event] = [UserConnect(100.0, "a"), UserDisconnect(200.0, "a")]
    report = oracle(events, end=300.0, boot=BOOT, seed=1)
    assert report.connects == 1 and report.instant_rate == 1.0 and report.mean_wait_s == 0
    assert report.node_seconds == 120.0 and report.user_seconds == 100.0
    assert report.efficiency == pytest.approx(100 / 120)
    assert report.nodes_created == 1


def test_a_short_gap_reuses_the_freed_node() -> None:
    events: list[Event] = [
        UserConnect(100.0, "a"),
        UserDisconnect(200.0, "a"),
        UserConnect(210.0, "b"),  # 10 s after a's node was freed: cheaper than a 20 s boot
        UserDisconnect(300.0, "b"),
    ]
    report = oracle(events, end=400.0, boot=BOOT, seed=1)
    assert report.nodes_created == 1
    assert report.node_seconds == 220.0  # 80 -> 300, the 10 s gap included
    assert report.user_seconds == 190.0


def test_a_long_gap_boots_a_fresh_node() -> None:
    events: list[Event] = [
        UserConnect(100.0, "a"),
        UserDisconnect(200.0, "a"),
        UserConnect(230.0, "b"),  # 30 s later: a fresh 20 s boot is cheaper
        UserDisconnect(300.0, "b"),
    ]
    report = oracle(events, end=400.0, boot=BOOT, seed=1)
    assert report.nodes_created == 2
    assert report.node_seconds == 120.0 + 90.0


def test_overlapping_sessions_need_a_node_each_and_open_ones_run_to_the_end() -> None:
    events: list[Event] = [
        UserActivity(50.0, "a", 50),
        UserConnect(100.0, "a"),
        UserConnect(150.0, "b"),
        UserConnect(160.0, "a"),  # repeated connect: ignored
        UserDisconnect(200.0, "a"),
    ]
    report = oracle(events, end=250.0, boot=BOOT, seed=1)
    assert report.connects == 2 and report.nodes_created == 2
    assert report.node_seconds == (200.0 - 80.0) + (250.0 - 130.0)
    assert report.user_seconds == 100.0 + 100.0


def test_the_seed_workload_oracle_is_efficient_and_deterministic() -> None:
    events = list(generate("seed", hours=6, seed=1))
    end = events[0].ts + 6 * 3600
    boot = UniformBoot(10, 29)
    first = oracle(events, end=end, boot=boot, seed=7)
    assert first == oracle(events, end=end, boot=boot, seed=7)
    assert first.instant_rate == 1.0 and 0.9 < first.efficiency < 1.0


# Under a boot schedule (hour 0 at 0 here), a node boots with the distribution in force at its
# creation, one boot time before the connect.

SLOWER_AT_1H = parse_boot_schedule("fixed:20,fixed:100@1")
FASTER_AT_1H = parse_boot_schedule("fixed:100,fixed:20@1")
CHANGE = 3600.0


def one_session(connect: float, boot: BootSchedule) -> float:
    """Node-seconds of one session from ``connect`` to ``connect + 1000``."""
    events: list[Event] = [UserConnect(connect, "a"), UserDisconnect(connect + 1000.0, "a")]
    report = oracle(events, end=connect + 2000.0, boot=boot, seed=1)
    assert report.instant_rate == 1.0 and report.nodes_created == 1
    return report.node_seconds - 1000.0  # what the node cost before the connect


@pytest.mark.parametrize(
    ("connect", "boot", "lead"),
    [
        (CHANGE - 500.0, SLOWER_AT_1H, 20.0),  # long before the change
        (CHANGE + 10.0, SLOWER_AT_1H, 20.0),  # created at 3590, before the change: 20 s
        (CHANGE + 20.0, SLOWER_AT_1H, 20.0),  # created at the change... just before it
        (CHANGE + 50.0, SLOWER_AT_1H, 50.0),  # a slow boot would be late: ready early, idles
        (CHANGE + 100.0, SLOWER_AT_1H, 100.0),  # created at the change, under the slow boot
        (CHANGE + 500.0, SLOWER_AT_1H, 100.0),
        (CHANGE - 500.0, FASTER_AT_1H, 100.0),
        (CHANGE + 10.0, FASTER_AT_1H, 100.0),  # created before the change: still slow
        (CHANGE + 50.0, FASTER_AT_1H, 20.0),  # created at 3630, after the change: fast
    ],
)
def test_a_fresh_node_boots_as_the_schedule_says_at_its_creation(
    connect: float, boot: BootSchedule, lead: float
) -> None:
    assert one_session(connect, boot) == pytest.approx(lead)


def test_a_freed_node_is_reused_when_cheaper_than_the_idle_fresh_one() -> None:
    # b connects 50 s after the change: a fresh node would be created at the change (a 100 s
    # boot would be late), costing 50 s before the connect; a's node, freed 40 s before, is
    # cheaper; 60 s before, it is not.
    for gap, created in ((40.0, 1), (60.0, 2)):
        events: list[Event] = [
            UserConnect(CHANGE - 1000.0, "a"),
            UserDisconnect(CHANGE + 50.0 - gap, "a"),
            UserConnect(CHANGE + 50.0, "b"),
            UserDisconnect(CHANGE + 500.0, "b"),
        ]
        report = oracle(events, end=CHANGE + 1000.0, boot=SLOWER_AT_1H, seed=1)
        assert report.nodes_created == created, gap


def test_a_schedule_without_changes_is_its_distribution_draw_for_draw() -> None:
    events = list(generate("seed", hours=3, seed=2))
    end = events[0].ts + 3 * 3600
    boot = UniformBoot(10, 29)
    schedule = BootSchedule(boot).starting_at(events[0].ts)
    assert oracle(events, end=end, boot=schedule, seed=3) == oracle(
        events, end=end, boot=boot, seed=3
    )


def test_slower_boots_from_an_hour_on_cost_the_oracle_more_node_time() -> None:
    events = list(generate("seed", hours=4, seed=1))
    start, end = events[0].ts, events[0].ts + 4 * 3600
    fast = oracle(events, end=end, boot=UniformBoot(10, 29), seed=7)
    drift = oracle(
        events,
        end=end,
        boot=parse_boot_schedule("uniform:10:29,uniform:60:180@2").starting_at(start),
        seed=7,
    )
    assert drift.instant_rate == 1.0 and drift.connects == fast.connects
    assert drift.node_seconds > fast.node_seconds
