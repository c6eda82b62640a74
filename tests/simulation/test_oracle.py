from __future__ import annotations

import pytest

from features.events import Event, UserActivity, UserConnect, UserDisconnect
from simulation.nodes.boot import FixedBoot, UniformBoot
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
