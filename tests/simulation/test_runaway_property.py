"""The engine on populations it was not tuned on never runs away (hypothesis).

Each example draws a population unlike ``seed``: a ``shifts`` one (multi-hour sessions split
by breaks, weekly habits, unannounced connects, bursts that rarely connect) or a ``habits``
one (routines with long sessions and lunch breaks), of random shares and sizes, starting on
a random weekday, started with or without the days before (features fed first, as the live
service rebuilds them from its event log), replayed over simulated days through the engine
that ships (heuristic scorer, default config but the lead time, set to a tick plus the
slowest boot as the config says). It must never fall far below the best static pool that
serves at least as many connects at once, and it must create few nodes per connect.

The engine before the runaway fix fails it on its first example, the default shifts
population from a Thursday: 4.03 nodes per connect (0.708 efficiency, where the best static
pool has 0.744).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from features.events import UserEvent
from features.online import OnlineFeatures
from models.heuristic import HeuristicScorer
from service.config import ServiceConfig
from service.engine import Engine
from simulation.bench.request import DEFAULT_MAX_NODES
from simulation.nodes.boot import UniformBoot
from simulation.policies import StaticPolicy
from simulation.runner import RunResult, run
from simulation.workloads import DEFAULT_START
from simulation.workloads.habits import habits_workload
from simulation.workloads.habits_params import HABITS_PARAMS, HabitsParams
from simulation.workloads.shifts import shifts_workload
from simulation.workloads.shifts_params import SHIFTS_PARAMS, ShiftsParams

DAY = 86400.0
EFFICIENCY_SLACK = 0.05
"""How far below the best static pool (at an equal or better instant rate) the engine may
fall: its sizing pays for knowing nothing in advance, a static pool chosen afterwards does
not."""
NODES_PER_CONNECT = 2.0
"""At most this many nodes created per connect (plus a few for the minimum pool)."""


@dataclass(frozen=True)
class Case:
    """One drawn population and how it is replayed."""

    params: ShiftsParams | HabitsParams
    seed: int
    start_day: int
    """Days after the default start (a Monday) the scored window begins."""
    history_days: int
    days: int
    boot: tuple[int, int]
    lead_time_s: float | None = None
    """None: a tick plus the slowest boot, as the config's doc says to set it."""
    max_nodes: int | None = None
    """None: ten more than the users, so that the budget never binds."""

    @property
    def workload(self) -> str:
        return "shifts" if isinstance(self.params, ShiftsParams) else "habits"

    def events(self, start: float, days: float) -> list[UserEvent]:
        hours = days * 24
        if isinstance(self.params, ShiftsParams):
            return list(
                shifts_workload(hours=hours, seed=self.seed, start=start, params=self.params)
            )
        return list(habits_workload(hours=hours, seed=self.seed, start=start, params=self.params))


@st.composite
def shifts_cases(draw: st.DrawFn) -> ShiftsParams:
    shift = draw(st.floats(0.1, 0.6))
    impulse = draw(st.floats(0.0, 0.3))
    weekly = draw(st.floats(0.0, min(0.3, 1.0 - shift - impulse)))
    low = draw(st.floats(1.0, 5.0))
    return replace(
        SHIFTS_PARAMS,
        users=draw(st.integers(40, 200)),
        shift_share=shift,
        impulse_share=impulse,
        weekly_share=weekly,
        shift_starts_h=tuple(
            draw(st.sets(st.sampled_from([0.0, 6.0, 8.0, 14.0, 22.0]), min_size=1))
        ),
        shift_work_h=(low, low + draw(st.floats(0.0, 4.0))),
        break_min=(draw(st.floats(10.0, 40.0)), 60.0),
        weekly_days=tuple(sorted(draw(st.sets(st.integers(0, 6), min_size=1, max_size=3)))),
        casual_connect_prob=draw(st.floats(0.0, 0.1)),
        impulse_connect_prob=draw(st.floats(0.2, 0.9)),
    )


@st.composite
def habits_cases(draw: st.DrawFn) -> HabitsParams:
    routine = draw(st.floats(0.2, 0.8))
    median_low = draw(st.floats(20.0, 180.0))
    return replace(
        HABITS_PARAMS,
        users=draw(st.integers(60, 250)),
        routine_share=routine,
        sporadic_share=draw(st.floats(0.0, 1.0 - routine)),
        routine_session_median_min=(median_low, median_low + draw(st.floats(0.0, 180.0))),
        lunch_break_min=(30.0, draw(st.floats(30.0, 90.0))),
    )


@st.composite
def cases(draw: st.DrawFn) -> Case:
    workload = draw(st.sampled_from(["shifts", "shifts", "habits"]))
    params: ShiftsParams | HabitsParams
    params = draw(shifts_cases()) if workload == "shifts" else draw(habits_cases())
    boot = draw(st.sampled_from([(10, 29), (20, 60)]))
    return Case(
        params=params,
        seed=draw(st.integers(0, 10_000)),
        start_day=draw(st.integers(0, 6)),
        history_days=draw(st.sampled_from([0, 0, 2])),
        days=draw(st.integers(3, 4)),
        boot=boot,
    )


def replay(case: Case) -> tuple[RunResult, list[RunResult]]:
    """The engine's run, and the static pools K = 0, 1, ... up to the first that serves at
    least as many connects at once."""
    start = DEFAULT_START + case.start_day * DAY
    history_start = start - case.history_days * DAY
    everything = case.events(history_start, case.history_days + case.days)
    history = [e for e in everything if e.ts < start]
    scored = [e for e in everything if e.ts >= start]
    end = start + case.days * DAY
    lead = 10.0 + case.boot[1] if case.lead_time_s is None else case.lead_time_s
    budget = case.params.users + 10 if case.max_nodes is None else case.max_nodes
    config = ServiceConfig(max_nodes=budget, lead_time_s=lead)
    boot = UniformBoot(*case.boot)
    features = OnlineFeatures()
    features.update_many(history)
    engine = Engine(HeuristicScorer(horizon_s=lead), config, features=features)
    result = run(scored, engine, start=start, end=end, boot=boot, seed=case.seed)
    statics: list[RunResult] = []
    for k in range(config.min_ready, 40):
        static = run(
            scored, StaticPolicy(k, config), start=start, end=end, boot=boot, seed=case.seed
        )
        statics.append(static)
        if static.instant_rate >= result.instant_rate:
            break
    return result, statics


THE_FIRST_RUNAWAY = Case(
    params=SHIFTS_PARAMS,
    seed=3,
    start_day=3,
    history_days=0,
    days=4,
    boot=(20, 60),
    lead_time_s=ServiceConfig().lead_time_s,
    max_nodes=DEFAULT_MAX_NODES,
)
"""The default shifts population, seed 3, from a Thursday to the Sunday, with the default
config and the bench's budget: before the fix, every few ticks of the quiet hours it asked
for the whole node budget (4.0 nodes per connect at 0.708 efficiency, where a static pool
reaches 0.74)."""
LONG_ROUTINES = Case(
    params=replace(HABITS_PARAMS, users=250, routine_session_median_min=(180.0, 360.0)),
    seed=11,
    start_day=4,
    history_days=2,
    days=3,
    boot=(10, 29),
)
"""Routines of 3-6 h sessions with lunch breaks, from a Friday over the weekend, the two
days before fed first."""


@pytest.mark.slow
@pytest.mark.timeout(900)
@settings(
    max_examples=5,
    deadline=None,
    derandomize=True,
    phases=(Phase.explicit, Phase.generate),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@example(THE_FIRST_RUNAWAY)
@example(LONG_ROUTINES)
@given(cases())
def test_the_engine_never_runs_away_on_populations_unlike_its_own(case: Case) -> None:
    print(case)
    result, statics = replay(case)
    assert result.connects > 0
    best = max(
        (s for s in statics if s.instant_rate >= result.instant_rate),
        key=lambda s: s.efficiency,
        default=None,
    )
    print(
        f"{case.workload} {case.days} d +{case.history_days} d history, boot {case.boot}: "
        f"engine {result.instant_rate:.4f} @ {result.efficiency:.3f}, "
        f"{result.nodes_per_connect:.2f} nodes/connect; best static "
        + ("none" if best is None else f"{best.instant_rate:.4f} @ {best.efficiency:.3f}")
    )
    assert result.nodes_created <= NODES_PER_CONNECT * result.connects + 10
    if best is not None:
        assert result.efficiency >= best.efficiency - EFFICIENCY_SLACK
