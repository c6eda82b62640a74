"""The engine: events and ticks in, commands out; scores and status exposed; state round trip."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.events import (
    Event,
    NodeStatus,
    NodeStatusChanged,
    UserActivity,
    UserConnect,
    UserDisconnect,
)
from features.online import OnlineFeatures
from models.connect_curve import CurveGrid
from models.heuristic import HeuristicScorer
from models.scoring import Floats, Scores, Source
from service.commands import Command, RequestNode, TerminateNode
from service.config import ServiceConfig
from service.demand import Demand
from service.engine import Engine
from service.plan import Moment
from service.pool import NodeState

T0 = 1_732_492_800.0


@dataclass(frozen=True)
class ModelLike:
    """A stand-in for a trained model: a fixed probability, from the model, with a version."""

    probability: float = 0.5
    horizon_s: float = 40.0
    version: str = "7"

    def score(self, features: Floats) -> Scores:
        n = len(features)
        return Scores(
            np.full(n, self.probability), np.ones(n, dtype=bool), self.version, self.horizon_s
        )


@dataclass
class Shell:
    """Executes commands at once; boots end only when the test says so."""

    engine: Engine
    log: list[Command] = field(default_factory=list)
    booting: list[str] = field(default_factory=list)
    created: int = 0

    def run(self, commands: list[Command], now: float) -> None:
        for command in commands:
            self.log.append(command)
            if isinstance(command, RequestNode):
                node_id = f"node-{self.created}"
                self.created += 1
                self.engine.node_created(command.token, node_id, now)
                self.booting.append(node_id)
                booting = NodeStatusChanged(now, node_id, NodeStatus.BOOTING)
                self.run(self.engine.on_event(booting, now), now)
            else:
                if command.node_id in self.booting:
                    self.booting.remove(command.node_id)
                gone = NodeStatusChanged(now, command.node_id, NodeStatus.TERMINATED)
                self.run(self.engine.on_event(gone, now), now)

    def event(self, event: Event) -> None:
        self.run(self.engine.on_event(event, event.ts), event.ts)

    def tick(self, now: float) -> list[Command]:
        commands = self.engine.tick(now)
        self.run(commands, now)
        return commands

    def boot_all(self, now: float) -> None:
        while self.booting:
            ready = NodeStatusChanged(now, self.booting.pop(0), NodeStatus.READY)
            self.run(self.engine.on_event(ready, now), now)


def engine(**config: object) -> Engine:
    return Engine(HeuristicScorer(), ServiceConfig(**config))  # type: ignore[arg-type]


def test_a_connect_with_no_node_requests_one_at_once_and_waits_for_it() -> None:
    shell = Shell(engine(min_ready=0, calibrate=False))  # no baseline: only the waiting users
    shell.event(UserConnect(T0, "a"))
    assert [type(c) for c in shell.log] == [RequestNode]
    assert shell.engine.pool.is_waiting("a")
    shell.event(UserConnect(T0 + 1, "b"))  # one more waiting user: one more node
    assert len(shell.log) == 2
    shell.boot_all(T0 + 15)
    report = shell.engine.metrics(T0 + 15)
    assert (report.connects, report.instant, report.waited) == (2, 0, 2)
    assert report.mean_wait_s == pytest.approx((15 + 14) / 2)


def test_a_tick_keeps_min_ready_nodes_with_nobody_around() -> None:
    shell = Shell(engine())
    commands = shell.tick(T0)
    assert commands == [RequestNode("req-0"), RequestNode("req-1")]
    assert shell.tick(T0 + 10) == []  # booting nodes count as warm
    shell.boot_all(T0 + 20)
    assert shell.tick(T0 + 30) == []
    status = shell.engine.status(T0 + 30)
    assert status.counts.ready == 2 and status.desired_warm == 2
    assert status.reason.startswith("hold")


def test_idle_surplus_goes_and_allocated_nodes_never_do() -> None:
    shell = Shell(engine(min_ready=0, calibrate=False))
    for i in range(6):
        shell.event(UserConnect(T0 + i, f"u{i}"))
    shell.boot_all(T0 + 20)
    for i in range(3):
        shell.event(UserDisconnect(T0 + 30 + i, f"u{i}"))
    shell.log.clear()
    shell.tick(T0 + 40)
    terminated = [c.node_id for c in shell.log if isinstance(c, TerminateNode)]
    allocated = {shell.engine.pool.node_of(f"u{i}") for i in range(3, 6)}
    # nobody is predicted (no activity): the band is [0, 1], so two of three idle nodes go
    assert len(terminated) == 2 and not set(terminated) & allocated
    assert shell.engine.pool.counts().ready == 1


def test_only_recent_users_who_are_not_connected_are_scored() -> None:
    shell = Shell(engine(recent_cutoff_s=3600))
    shell.event(UserActivity(T0, "old", int(T0)))
    shell.event(UserActivity(T0 + 7000, "recent", int(T0 + 7000)))
    shell.event(UserActivity(T0 + 7001, "in-session", int(T0 + 7001)))
    shell.event(UserConnect(T0 + 7002, "in-session"))
    shell.tick(T0 + 7010)
    scores = shell.engine.last_scores
    assert [s.user_id for s in scores.top(10)] == ["recent"]
    assert scores.get("old") is None and scores.get("in-session") is None
    recent = scores.get("recent")
    assert recent is not None and recent.source is Source.HEURISTIC
    assert recent.model_version is None
    assert recent.probability == pytest.approx(0.9 * np.exp(-10 / 300))


def test_scores_carry_their_source_and_model_version() -> None:
    e = Engine(ModelLike(0.5, version="12"), ServiceConfig(calibrate=False))
    e.on_event(UserActivity(T0, "a", int(T0)), T0)
    e.tick(T0 + 1)
    (score,) = e.last_scores.top(5)
    assert (score.source, score.model_version, score.probability) == (Source.MODEL, "12", 0.5)
    assert score.to_dict()["source"] == "model"


def test_scores_about_another_horizon_are_converted_to_the_lead_time() -> None:
    e = Engine(ModelLike(0.75, horizon_s=80.0), ServiceConfig(lead_time_s=40, calibrate=False))
    e.on_event(UserActivity(T0, "a", int(T0)), T0)
    e.tick(T0 + 1)
    (score,) = e.last_scores.top(1)
    assert score.probability == 0.75
    assert score.demand_probability == pytest.approx(0.5)  # 1 - (1 - 0.75) ** (40 / 80)


def test_the_calibration_brings_an_overconfident_scorer_down_to_the_observed_rate() -> None:
    shell = Shell(Engine(ModelLike(0.9), ServiceConfig()))
    users = [f"u{i}" for i in range(20)]
    for k in range(200):
        now = T0 + 10.0 * k
        for u in users:
            shell.event(UserActivity(now, u, int(now)))
        shell.tick(now + 0.5)
        shell.boot_all(now + 0.5)
    scores = shell.engine.last_scores
    assert len(scores) == 20
    assert float(scores.demand_probability.max()) < 0.1  # nobody ever connected
    assert shell.engine.last_decision is not None
    assert shell.engine.last_decision.expected_demand < 2.0


def test_on_demand_requests_and_ticks_respect_the_budget() -> None:
    shell = Shell(engine(max_nodes=3, min_ready=2))
    shell.tick(T0)
    for i in range(5):
        shell.event(UserConnect(T0 + 1 + i, f"u{i}"))
    assert sum(isinstance(c, RequestNode) for c in shell.log) == 3
    shell.tick(T0 + 10)
    assert shell.engine.pool.counts().live == 3
    assert shell.engine.status(T0 + 10).reason.startswith("at budget")


def test_status_is_plain_data() -> None:
    shell = Shell(engine())
    shell.event(UserActivity(T0, "a", int(T0)))
    shell.tick(T0 + 1)
    status = orjson.loads(orjson.dumps(shell.engine.status(T0 + 2).to_dict()))
    assert status["counts"]["requested"] == 0 and status["counts"]["booting"] >= 2
    assert status["scored_users"] == 1 and status["tracked_users"] == 1
    assert set(status["metrics"]) >= {"instant_rate", "mean_wait_s", "p95_wait_s", "efficiency"}
    assert isinstance(status["reason"], str) and status["desired_warm"] >= 2


def test_status_says_which_tick_decided() -> None:
    shell = Shell(engine())
    assert shell.engine.status(T0).decided_at is None
    shell.event(UserActivity(T0, "a", int(T0)))
    shell.tick(T0 + 1)
    shell.event(UserActivity(T0 + 3, "a", int(T0 + 3)))
    status = shell.engine.status(T0 + 5)
    assert status.decided_at == T0 + 1 and status.at == T0 + 5
    shell.tick(T0 + 11)
    assert shell.engine.status(T0 + 12).to_dict()["decided_at"] == T0 + 11
    # A restored engine keeps when it last ticked, not the decision: it decided nothing yet.
    restored = Engine.from_dict(shell.engine.to_dict(), HeuristicScorer())
    assert restored.last_tick == T0 + 11
    assert restored.status(T0 + 13).decided_at is None


def trace(seed: int, steps: int = 120) -> list[tuple[str, float, str]]:
    rng = np.random.default_rng(seed)
    out: list[tuple[str, float, str]] = []
    now = T0
    for _ in range(steps):
        now += float(rng.uniform(0.5, 6.0))
        user = f"u{rng.integers(6)}"
        out.append((str(rng.choice(["act", "act", "conn", "disc", "tick", "boot"])), now, user))
    return out


def rebuilt_features(steps: list[tuple[str, float, str]]) -> OnlineFeatures:
    """What the live shell rebuilds from the event log on a restart."""
    features = OnlineFeatures()
    for kind, now, user in steps:
        if kind == "act":
            features.update(UserActivity(now, user, int(now)))
        elif kind == "conn":
            features.update(UserConnect(now, user))
        elif kind == "disc":
            features.update(UserDisconnect(now, user))
    return features


def play(engine: Engine, shell: Shell, steps: list[tuple[str, float, str]]) -> None:
    for kind, now, user in steps:
        if kind == "act":
            shell.event(UserActivity(now, user, int(now)))
        elif kind == "conn":
            shell.event(UserConnect(now, user))
        elif kind == "disc":
            shell.event(UserDisconnect(now, user))
        elif kind == "tick":
            shell.tick(now)
        else:
            shell.boot_all(now)


def test_the_same_events_give_the_same_commands() -> None:
    steps = trace(5)
    a, b = Shell(engine()), Shell(engine())
    play(a.engine, a, steps)
    play(b.engine, b, steps)
    assert a.log == b.log and len(a.log) > 3
    assert a.engine.to_dict() == b.engine.to_dict()


def test_round_trip_restores_an_engine_that_carries_on_the_same() -> None:
    steps = trace(11, 200)
    first, rest = steps[:100], steps[100:]
    shell = Shell(engine())
    play(shell.engine, shell, first)
    data = orjson.loads(orjson.dumps(shell.engine.to_dict()))
    restored = Engine.from_dict(data, HeuristicScorer(), features=rebuilt_features(first))
    assert restored.to_dict() == data
    twin = Shell(restored, booting=list(shell.booting), created=shell.created)
    shell.log.clear()
    play(shell.engine, shell, rest)
    play(twin.engine, twin, rest)
    # the calibration's pending ticks are saved too: the same commands, pool and calibration
    assert twin.log == shell.log
    assert twin.engine.pool.to_dict() == shell.engine.pool.to_dict()
    assert twin.engine.calibration.to_dict() == shell.engine.calibration.to_dict()


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 6), st.integers(0, 3))
def test_random_traffic_never_breaks_the_invariants(seed: int, budget: int, min_ready: int) -> None:
    shell = Shell(engine(max_nodes=budget, min_ready=min_ready))
    ticks = 0
    for kind, now, user in trace(seed, 150):
        pool = shell.engine.pool
        allocated = {n.node_id for n in pool.nodes() if n.state is NodeState.ALLOCATED}
        logged = len(shell.log)
        play(shell.engine, shell, [(kind, now, user)])
        new = shell.log[logged:]
        counts = pool.counts()
        assert counts.live <= budget
        assert not {c.node_id for c in new if isinstance(c, TerminateNode)} & allocated
        if kind == "tick":
            ticks += 1
            requested = any(isinstance(c, RequestNode) for c in new)
            terminated = any(isinstance(c, TerminateNode) for c in new)
            assert not (requested and terminated)
            assert counts.warm >= min_ready or counts.live == budget
    assert ticks > 0


# --- runaway guards -------------------------------------------------------------------------


def test_a_vanishing_demand_asks_for_no_node() -> None:
    """The first runaway of the shifts workload: at night, only users the heuristic scores 0
    are around, and their calibrated rate has decayed for two days to 1e-14. Each
    probability fell below the distribution's cut-off and was dropped, while E[D] still
    counted them: no warm count reached the target, and the need ran to the budget
    (``need 501.00 (E[D] 0.00)``), every few ticks, for hours."""
    features = OnlineFeatures()  # the users were seen before (no first-sight sizing)
    for i in range(200):
        features.update(UserActivity(T0 + i, f"quiet{i}", int(T0 + i)))
    shell = Shell(Engine(HeuristicScorer(), ServiceConfig(max_nodes=500), features=features))
    calibration = shell.engine.calibration
    state = calibration.to_dict()
    state["scored"][0], state["hits"][0] = 1e5, 1e-9  # band 0: rate 1e-14
    state |= {"unforeseen": 1e-12, "exposure_s": 1e4, "last_at": T0 + 900}
    calibration.load(state)
    for k in range(6):  # last activity 15 min ago: heuristic 0, band 0
        shell.tick(T0 + 900 + 10 * k)
        shell.boot_all(T0 + 905 + 10 * k)
    decision = shell.engine.last_decision
    assert decision is not None and decision.refused is None
    assert decision.need < 1.0 and 0 < decision.expected_demand < 1e-9
    assert shell.engine.status(T0 + 960).counts.live == 2  # min_ready
    assert shell.created == 2 and shell.engine.refusals == {}


class DegenerateOnce(Engine):
    """An engine whose demand goes degenerate while ``broken`` is set (a stand-in for a bug
    the scaler must not act on, as the one above was)."""

    broken = False

    def _plan(
        self, timed: Floats, moments: Floats, now: float, coming: list[float]
    ) -> tuple[Moment, ...]:
        sound = super()._plan(timed, moments, now, coming)
        if not self.broken:
            return sound
        broken = [
            dataclasses.replace(
                m,
                demand=Demand(
                    mean=m.demand.mean + 1e-3, tail=np.zeros(m.demand.support), uncovered=1.0
                ),
            )
            for m in sound
        ]
        return tuple(broken)


def test_a_refused_need_holds_the_last_sound_one_is_counted_and_queued_once() -> None:
    core = DegenerateOnce(ModelLike(probability=0.3), ServiceConfig(min_ready=0))
    shell = Shell(core)
    for i in range(12):
        shell.event(UserActivity(T0 + i, f"u{i}", int(T0 + i)))
    shell.tick(T0 + 20)
    shell.boot_all(T0 + 40)
    sound = core.last_decision
    assert sound is not None and sound.refused is None and sound.need > 3
    live = core.status(T0 + 40).counts.live
    core.broken = True
    for k in range(5):
        assert shell.tick(T0 + 50 + 10 * k) == []  # the held need: nothing to do
    decision = core.last_decision
    assert decision is not None and decision.refused is not None
    assert decision.need == sound.need and core.status(T0 + 90).counts.live == live
    assert core.refusals == {"unsupported": 5}
    queued = core.take_refusals()
    assert len(queued) == 1 and queued[0].need == 51.0  # once for the whole run
    assert core.take_refusals() == []
    core.broken = False
    shell.tick(T0 + 100)
    core.broken = True
    shell.tick(T0 + 110)
    assert len(core.take_refusals()) == 1  # a new run of refusals: queued again
    status = core.status(T0 + 110).to_dict()
    assert status["refused_needs"] == {"unsupported": 6}
    restored = Engine.from_dict(orjson.loads(orjson.dumps(core.to_dict())), ModelLike())
    assert restored.refusals == core.refusals


def test_status_reports_nodes_per_connect_and_the_idle_share() -> None:
    shell = Shell(engine(min_ready=1, calibrate=False))
    shell.tick(T0)
    shell.boot_all(T0 + 10)  # one node: booting 10 s
    shell.event(UserConnect(T0 + 30, "a"))  # idle 20 s, then busy
    shell.boot_all(T0 + 40)  # its replacement
    metrics = shell.engine.status(T0 + 130).to_dict()["metrics"]
    assert metrics["nodes_created"] == 2 and metrics["nodes_per_connect"] == 2.0
    assert metrics["busy_node_seconds"] == pytest.approx(100.0)
    assert metrics["idle_share"] == pytest.approx(1 - 100.0 / (130.0 + 100.0))


def boots(shell: Shell, boot_s: float, count: int, start: float) -> float:
    """``count`` connects that stay, each waiting for a node that boots in ``boot_s`` (no
    tick meanwhile); the time after."""
    now = start
    for i in range(count):
        shell.event(UserConnect(now, f"b{i}"))
        shell.boot_all(now + boot_s)
        now += boot_s + 1
    return now


def test_the_lead_time_follows_the_boots_the_nodes_show() -> None:
    shell = Shell(engine(min_ready=0, max_nodes=100, calibrate=False))
    shell.tick(T0)
    assert shell.engine.lead_time_s == 10 + 30  # a tick plus the prior boot
    now = boots(shell, 120.0, 40, T0 + 10)  # the prior's 30 s no longer shows
    shell.tick(now)
    assert shell.engine.lead_time_s == pytest.approx(130.0)
    status = shell.engine.status(now).to_dict()
    assert status["lead_time_s"] == pytest.approx(130.0)
    assert status["boot_times"]["seen"] == 40 and status["boot_times"]["quantile_s"] == 120.0
    # the calibration judged each tick over its own lead time, and the scores follow
    fixed = Shell(engine(min_ready=0, lead_time_s=50.0, calibrate=False))
    boots(fixed, 120.0, 5, T0)
    assert fixed.engine.lead_time_s == 50.0 and fixed.engine.boot_times.seen == 5


def test_a_node_booting_longer_than_every_boot_seen_is_not_counted_on() -> None:
    shell = Shell(engine(min_ready=1, calibrate=False))
    for _ in range(50):
        shell.engine.boot_times.add(20.0)
    assert len(shell.tick(T0)) == 1  # the one warm node, booting
    assert shell.tick(T0 + 15) == []  # booting 15 s: it will be ready in time
    late = shell.tick(T0 + 100)  # booting 100 s: longer than any boot seen
    assert [type(c) for c in late] == [RequestNode]
    decision = shell.engine.last_decision
    assert decision is not None and "of it late" in decision.reason


def test_waits_tighten_the_target_in_force_and_serving_loosens_it() -> None:
    shell = Shell(engine(min_ready=0))
    shell.tick(T0)
    for i in range(3):
        shell.event(UserConnect(T0 + 1 + i, f"w{i}"))  # no warm node: each waits
    feedback = shell.engine.status(T0 + 5).feedback
    assert feedback.window_connects == 3 and feedback.recent_rate == 0.0
    assert feedback.target_in_force > 0.99
    off = Shell(engine(min_ready=0, feedback_gain=0.0))
    off.event(UserConnect(T0, "w"))
    assert off.engine.status(T0).feedback.target_in_force == 0.99


@dataclass
class LateCurve:
    """A curve model whose users connect, if at all, in the last quarter of its horizon."""

    horizon_s: float = 40.0

    def score(self, features: Floats) -> Scores:
        n = len(features)
        grid = CurveGrid.even(self.horizon_s, 4)
        curves = np.tile([0.0, 0.0, 0.0, 0.6], (n, 1))
        return Scores(
            np.full(n, 0.6), np.ones(n, dtype=bool), "3", self.horizon_s, curves=(grid, curves)
        )


def test_the_plan_spreads_each_user_s_probability_as_the_curve_says() -> None:
    config = ServiceConfig(
        min_ready=0, lead_time_s=40.0, plan_moments=4, calibrate=False, size_on_first_sight=False
    )
    engine = Engine(LateCurve(), config)
    shell = Shell(engine)
    for i in range(6):
        shell.event(UserActivity(T0 + i, f"u{i}", int(T0 + i)))
    shell.tick(T0 + 10)
    scores = engine.last_scores
    assert scores.timed.shape == (6, 4)
    assert scores.timed[:, :3] == pytest.approx(0.0)  # nobody before the last quarter
    assert scores.demand_probability == pytest.approx(0.6)
    assert scores.timed[:, -1] == pytest.approx(scores.demand_probability)
    decision = engine.last_decision
    assert decision is not None and decision.request > 0 and "for +40s" in decision.reason


def test_plan_settings_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError, match="plan_moments must be in"):
        ServiceConfig(plan_moments=0)
    for bad in (0.0, 1.5, math.nan):
        with pytest.raises(ValueError, match="plan_in_time must be in"):
            ServiceConfig(plan_in_time=bad)


def test_a_lead_time_of_minutes_is_planned_at_several_moments_unless_configured() -> None:
    for lead_s, configured, count in ((186.0, None, 4), (40.0, None, 1), (186.0, 1, 1)):
        config = ServiceConfig(lead_time_s=lead_s, plan_moments=configured)
        engine = Engine(ModelLike(), config)
        shell = Shell(engine)
        shell.event(UserActivity(T0, "u0", int(T0)))
        shell.tick(T0 + 10)
        scores = engine.last_scores
        assert len(scores.moments) == count and scores.moments[-1] == lead_s
        assert scores.timed.shape == (1, count)
