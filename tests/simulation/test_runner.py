"""The virtual-time runner: hand-made traces with known numbers, determinism, a 24 h replay."""

from __future__ import annotations

import pytest

from features.events import UserActivity, UserConnect, UserDisconnect, UserEvent
from models.heuristic import HeuristicScorer
from service.config import ServiceConfig
from service.engine import Engine
from simulation.nodes.boot import FixedBoot
from simulation.runner import RunResult, run, run_workload
from simulation.workloads import DEFAULT_START, generate

T0 = DEFAULT_START


def replay(events: list[UserEvent], seconds: float, **config: object) -> tuple[RunResult, Engine]:
    settings = {"calibrate": False, "max_nodes": 5, **config}
    engine = Engine(HeuristicScorer(), ServiceConfig(**settings))  # type: ignore[arg-type]
    result = run(events, engine, start=T0, end=T0 + seconds, boot=FixedBoot(10), seed=1)
    return result, engine


HAND_MADE: list[UserEvent] = [
    UserConnect(T0 + 15, "a"),
    UserConnect(T0 + 25, "b"),
    UserDisconnect(T0 + 60, "a"),
]


def test_a_hand_made_trace_gives_the_numbers_worked_out_by_hand() -> None:
    # Sizing at ticks only. t=0 tick: 1 node (min_ready), ready at 10. a connects at 15:
    # instant. Tick 20: a second node, ready at 30. b connects at 25 and waits 5 s for it.
    # Tick 30: a third, ready at 40. a leaves at 60: two idle, one goes (idle longest).
    result, engine = replay(
        HAND_MADE, 90, min_ready=1, replace_at_once=False, size_on_first_sight=False
    )
    assert (result.connects, result.instant, result.waited) == (2, 1, 1)
    assert result.instant_rate == 0.5
    assert result.mean_wait_s == 5.0
    assert result.p95_wait_s == pytest.approx(5.0, rel=0.01)  # a bucketed histogram: 1 %
    assert result.nodes_created == 3 and result.peak_nodes == 3
    assert result.node_seconds == pytest.approx(90 + 70 + 30)
    assert result.user_seconds == pytest.approx(45 + 65)
    assert result.efficiency == pytest.approx(110 / 190)
    assert (result.events, result.ticks) == (3, 9)
    assert engine.pool.counts().live == 2


def test_a_node_taken_is_replaced_at_once() -> None:
    # As above, but a's connect at 15 sizes again at once: a second node is requested at 15,
    # ready at 25, in time for b, who connects at 25 and is served at once too.
    result, _ = replay(HAND_MADE, 90, min_ready=1, replace_at_once=True, size_on_first_sight=False)
    assert (result.connects, result.instant, result.waited) == (2, 2, 0)
    assert result.nodes_created == 3


def test_activity_warms_a_node_before_the_connect() -> None:
    cold: list[UserEvent] = [UserConnect(T0 + 30, "c"), UserDisconnect(T0 + 90, "c")]
    result, _ = replay(cold, 120, min_ready=0)
    assert result.instant_rate == 0.0 and result.mean_wait_s == 10.0  # a boot on demand
    warm: list[UserEvent] = [UserActivity(T0, "c", int(T0)), *cold]
    result, _ = replay(warm, 120, min_ready=0)
    assert result.instant_rate == 1.0 and result.waited == 0
    # the node was requested at the first tick (t=0) and serves from 30 to 90
    assert result.nodes_created == 1
    assert result.user_seconds == pytest.approx(60.0)


def test_the_engine_accounts_node_and_user_time_as_the_node_api_does() -> None:
    engine = Engine(HeuristicScorer(), ServiceConfig())
    hours = 2.0
    result = run(
        generate("seed", hours=hours, seed=4),
        engine,
        start=T0,
        end=T0 + hours * 3600,
        boot=FixedBoot(17),
        seed=4,
    )
    report = engine.metrics(T0 + hours * 3600)
    assert result.connects > 100
    assert report.node_seconds == pytest.approx(result.node_seconds)
    assert report.user_seconds == pytest.approx(result.user_seconds)
    assert report.nodes_created == result.nodes_created


@pytest.mark.slow
def test_runs_are_deterministic_and_depend_on_the_seeds() -> None:
    a = run_workload("seed", hours=1, seed=2)
    b = run_workload("seed", hours=1, seed=2)
    assert a == b
    other_fleet = run_workload("seed", hours=1, seed=2, fleet_seed=3)
    assert other_fleet.connects == a.connects  # same users, other boot times
    assert other_fleet != a
    assert run_workload("seed", hours=1, seed=5).events != a.events  # another workload


def test_an_empty_window_is_refused() -> None:
    engine = Engine(HeuristicScorer())
    with pytest.raises(ValueError, match="end must be after start"):
        run([], engine, start=T0, end=T0, boot=FixedBoot(10), seed=1)


@pytest.mark.slow
def test_a_day_of_the_seed_workload_with_the_heuristic_is_sane() -> None:
    result = run_workload("seed", hours=24, seed=1)
    assert 2800 < result.connects < 3800  # ~136 an hour
    assert result.ticks == 24 * 360
    assert result.instant_rate >= 0.99
    assert 0.6 < result.efficiency < 0.9
    assert 0 < result.mean_wait_s <= result.p95_wait_s <= 30  # a boot at most
    assert result.peak_nodes is not None and result.peak_nodes <= ServiceConfig().max_nodes
    assert result.user_seconds < result.node_seconds
