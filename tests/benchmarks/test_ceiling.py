"""benchmarks/ceiling.py: the engine's scaler given a scorer that knows who connects when, or
the seed simulator's rules."""

from __future__ import annotations

import bisect
import math

import numpy as np
import pytest

from benchmarks.ceiling import SeedRules, ceiling, event_times, seed_rules
from features.events import UserConnect
from simulation.bench.request import BenchRequest
from simulation.bench.run import run_bench
from simulation.bench.setup import prepare
from simulation.policies import parse_policies
from simulation.workloads.seed import SEED_PARAMS


def test_knowing_who_connects_when_beats_the_heuristic_on_the_same_engine() -> None:
    request = BenchRequest(
        hours=2, boot="uniform:60:180", policies=parse_policies("heuristic:0.99")
    )
    (known,) = ceiling(request, [0.99])
    (heuristic,) = run_bench(request).policies
    assert known["connects"] == heuristic.run.connects
    assert known["efficiency"] > heuristic.run.efficiency + 0.1
    assert known["nodes_created"] < heuristic.run.nodes_created


START = 1_700_000_000.0


def rules(activities: list[float], *, kind: str = "fast", **events: list[float]) -> SeedRules:
    waits = {"fast": SEED_PARAMS.fast_wait_s, "slow": SEED_PARAMS.slow_wait_s}
    return SeedRules(
        start=START,
        activities={"u": np.array(activities)},
        connects={"u": events.get("connects", [])},
        disconnects={"u": events.get("disconnects", [])},
        waits={"u": waits[kind]} if kind in waits else {},
        params=SEED_PARAMS,
        rate=0.025,
    )


def test_a_check_that_passed_leaves_the_waits_still_possible() -> None:
    # the first check (at the start) sees no activity; the next, 5 s later, sees the one at +1
    known = rules([START + 1.0])("u", START + 10.0, np.array([10.0, 40.0]))
    # 5 s since the pass: a fast wait of 6-34 s is left, 6-15 of them end within 10 s
    assert known.tolist() == pytest.approx([10 / 29, 1.0])


def test_checks_to_come_pass_by_chance() -> None:
    now, horizon = START + 2.0, 40.0
    known = rules([])("u", now, np.array([horizon]))
    # the check at the start failed; from +5 each check passes with an activity in its window
    rate, step = 0.025, 5.0
    low, high = SEED_PARAMS.fast_wait_s
    expected, failed = 0.0, 1.0
    for j in range(20):
        at = START + step * (j + 1)
        passes = 1.0 - math.exp(-rate * (at - now if j == 0 else step))
        by = sum(w <= now + horizon - at for w in range(low, high + 1)) / (high - low + 1)
        expected += failed * passes * by
        failed *= 1.0 - passes
    assert known[0] == pytest.approx(expected)
    assert 0.0 < known[0] < 1.0


def test_no_connect_is_foreseen_for_the_connected_the_resting_or_browsers() -> None:
    moments = np.array([40.0])
    assert rules([START + 1.0], kind="browse")("u", START + 10.0, moments)[0] == 0.0
    connected = rules([START + 1.0], connects=[START + 12.0])
    assert connected("u", START + 20.0, moments)[0] == 0.0
    # a disconnect 10 s ago: the rest (60-239 s) leaves no check, so no connect, within 40 s
    resting = rules([START + 1.0], connects=[START + 12.0], disconnects=[START + 100.0])
    assert resting("u", START + 110.0, moments)[0] == 0.0


def test_the_rules_probabilities_are_calibrated_on_the_seed_workload() -> None:
    request = BenchRequest(hours=3, seed=2, boot="uniform:10:29")
    setup = prepare(request)
    knowledge = seed_rules(request, setup.scored)
    connects = event_times(setup.scored.events, UserConnect)
    lead = np.array([40.0])
    predicted, happened = [], []
    for now in np.arange(setup.scored.start + 300.0, setup.scored.end - 60.0, 20.0).tolist():
        for user in knowledge.waits:
            times = connects.get(user, [])
            k = bisect.bisect_right(times, now)
            predicted.append(float(knowledge(user, now, lead)[0]))
            happened.append(k < len(times) and times[k] <= now + 40.0)
    p, y = np.array(predicted), np.array(happened, dtype=np.float64)
    assert y.sum() > 300
    assert p.sum() == pytest.approx(y.sum(), rel=0.08)
    for low, high in ((0.0, 0.1), (0.1, 0.4), (0.4, 1.01)):
        band = (p >= low) & (p < high)
        assert abs(p[band].mean() - y[band].mean()) < 0.05, (low, high)
