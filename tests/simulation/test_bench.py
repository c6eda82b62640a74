"""The bench: scoring on tiny traces, the JSON, determinism, a model that never sees its test
events, the sweep and its plot."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from features.events import UserActivity, UserConnect, UserDisconnect, UserEvent
from features.trace import write_jsonl
from models.heuristic import HeuristicScorer
from models.horizon import HorizonSource
from models.model_types import ModelType
from service.config import ServiceConfig
from simulation.bench.errors import BenchError, TrainingLeak
from simulation.bench.history import (
    History,
    check_separate,
    split_history,
    trace_history,
    workload_history,
)
from simulation.bench.model import TrainedModel, bench_horizon, train_model
from simulation.bench.plot import plot_frontier
from simulation.bench.policy_run import PolicyResult, _scorer, run_policy, warm_features
from simulation.bench.request import BenchRequest, parse_override
from simulation.bench.run import run_bench
from simulation.bench.setup import BenchSetup, prepare
from simulation.bench.sweep import best_at, frontiers, run_sweep
from simulation.nodes.boot import BootSchedule, FixedBoot, parse_boot_schedule
from simulation.policies import PolicyKind, PolicySpec, parse_policies
from simulation.runner import RunResult
from simulation.workloads import DEFAULT_START, generate

T0 = DEFAULT_START
FAST = parse_policies("static:2,seed-rule,heuristic,oracle")
STATIC_0 = parse_policies("static:0")
POLICY_KEYS = {
    "policy",
    "connects",
    "instant_rate",
    "mean_wait_s",
    "p95_wait_s",
    "efficiency",
    "node_seconds",
    "user_seconds",
    "nodes_created",
    "nodes_per_connect",
    "idle_share",
    "knob",
    "refused_needs",
}


TINY_BOOT = BootSchedule(FixedBoot(20))


def tiny_setup(
    events: list[UserEvent], seconds: float, boot: BootSchedule = TINY_BOOT
) -> BenchSetup:
    history = History(tuple(events), T0, T0 + seconds, "hand-made")
    return BenchSetup(history, boot, seed=1, config=ServiceConfig())


def test_every_policy_is_scored_by_the_same_code_on_a_hand_made_trace() -> None:
    events: list[UserEvent] = [
        UserConnect(T0 + 100, "a"),
        UserDisconnect(T0 + 200, "a"),
        UserConnect(T0 + 210, "b"),  # 10 s after a's node was freed
        UserDisconnect(T0 + 300, "b"),
    ]
    setup = tiny_setup(events, 400)
    oracle = run_policy(PolicySpec(PolicyKind.ORACLE), setup)
    # one node, created at 80 (a 20 s boot before a's connect), reused for b: 80 -> 300
    assert (oracle.run.connects, oracle.run.instant_rate, oracle.run.nodes_created) == (2, 1.0, 1)
    assert oracle.run.node_seconds == 220.0 and oracle.run.user_seconds == 190.0
    assert oracle.run.efficiency == pytest.approx(190 / 220)
    assert oracle.knob is None
    static = run_policy(PolicySpec(PolicyKind.STATIC, k=1), setup)
    # t=0: one node (ready 20). a takes it at 100: a replacement is requested (ready 120).
    # a frees its node at 200: two idle, the one idle the longest (the replacement) goes.
    # b takes a's old node at 210: another replacement (ready 230), which goes at 300 when b
    # frees the first node again. Node time: 0 -> 400, 100 -> 200, 210 -> 300.
    assert (static.run.connects, static.run.instant_rate, static.run.nodes_created) == (2, 1.0, 3)
    assert static.run.node_seconds == pytest.approx(400 + 100 + 90)
    assert static.run.user_seconds == 190.0
    assert static.run.efficiency == pytest.approx(190 / 590)
    assert static.knob == 1.0


def test_the_json_holds_every_policy_in_order_with_the_same_fields() -> None:
    result = run_bench(BenchRequest(hours=1, seed=3, policies=FAST))
    data = result.to_dict()
    assert {"workload", "seed", "hours", "boot", "policies"} <= set(data)
    assert (data["workload"], data["seed"], data["hours"]) == ("seed", 3, 1.0)
    assert data["boot"] == "uniform:10:29"
    assert [p["policy"] for p in data["policies"]] == [
        "static:2",
        "seed-rule",
        "heuristic",
        "oracle",
    ]
    for policy in data["policies"]:
        assert set(policy) == POLICY_KEYS
        assert 0.0 <= policy["instant_rate"] <= 1.0
        assert policy["efficiency"] == pytest.approx(
            policy["user_seconds"] / policy["node_seconds"]
        )
        assert policy["nodes_per_connect"] == policy["nodes_created"] / policy["connects"]
        assert 0.0 <= policy["idle_share"] < 1.0
        assert (policy["refused_needs"] == 0) == (policy["policy"] == "heuristic")
    connects = {p["connects"] for p in data["policies"]}
    users = {p["user_seconds"] for p in data["policies"]}
    assert len(connects) == 1 and len(users) == 1  # the same events for every policy
    oracle = data["policies"][-1]
    assert oracle["instant_rate"] == 1.0
    assert all(p["node_seconds"] >= oracle["node_seconds"] for p in data["policies"])
    assert "model" not in data and "sweep" not in data and "boot_schedule" not in data


def test_the_bench_horizon_is_the_service_s_rule_over_draws_of_the_bench_s_boots() -> None:
    config = ServiceConfig()
    uniform = bench_horizon(parse_boot_schedule("uniform:10:29"), 1, config)
    assert uniform.source is HorizonSource.BOOTS and uniform.boots == 256
    assert uniform.boot_s is not None and 27.0 <= uniform.boot_s <= 29.0
    assert uniform.horizon_s == 10.0 + uniform.boot_s
    assert uniform == bench_horizon(parse_boot_schedule("uniform:10:29"), 1, config)  # seeded
    assert bench_horizon(BootSchedule(FixedBoot(30)), 1, config).horizon_s == 40.0
    slow = bench_horizon(parse_boot_schedule("uniform:20:60"), 2, config)
    assert slow.boot_s is not None and 56.0 <= slow.boot_s <= 60.0
    # The distribution in force at the scored window's start, not a later one.
    later = parse_boot_schedule("fixed:30,fixed:90@2").starting_at(T0)
    assert bench_horizon(later, 1, config).horizon_s == 40.0
    # A fixed lead time is the service's lead time: the horizon, given.
    fixed = bench_horizon(later, 1, ServiceConfig(lead_time_s=70.0))
    assert (fixed.source, fixed.horizon_s) == (HorizonSource.GIVEN, 70.0)
    # The heuristic policy's scores are about the same horizon.
    setup = tiny_setup([UserConnect(T0 + 100, "a")], 600.0)
    scorer = _scorer(PolicySpec(PolicyKind.HEURISTIC), setup, setup.config)
    assert isinstance(scorer, HeuristicScorer)
    assert scorer.horizon_s == bench_horizon(setup.boot, setup.seed, setup.config).horizon_s
    assert scorer.horizon_s == 30.0  # the tiny setup's boots: 20 s


def test_same_inputs_same_json_other_seed_other_json() -> None:
    a = run_bench(BenchRequest(hours=1, seed=5, policies=FAST)).to_dict()
    b = run_bench(BenchRequest(hours=1, seed=5, policies=FAST)).to_dict()
    c = run_bench(BenchRequest(hours=1, seed=6, policies=FAST)).to_dict()
    assert a == b
    assert a["policies"] != c["policies"]


# Boot schedules: hours from the start of the scored window.


def test_a_node_boots_with_the_distribution_in_force_when_it_is_requested() -> None:
    # static:0 boots a node for each connect: a at 100 under the first 20 s boot, b at 300
    # after the change at 180 s (0.05 h) under the 100 s one.
    events: list[UserEvent] = [
        UserConnect(T0 + 100, "a"),
        UserDisconnect(T0 + 150, "a"),
        UserConnect(T0 + 300, "b"),
        UserDisconnect(T0 + 500, "b"),
    ]
    boot = parse_boot_schedule("fixed:20,fixed:100@0.05").starting_at(T0)
    static = run_policy(PolicySpec(PolicyKind.STATIC, k=0), tiny_setup(events, 600, boot))
    assert (static.run.waited, static.run.mean_wait_s) == (2, (20.0 + 100.0) / 2)
    assert static.run.node_seconds == pytest.approx((150 - 100) + (500 - 300))


def test_the_schedule_counts_its_hours_from_the_scored_window_not_the_history() -> None:
    def waits(boot: str) -> tuple[BenchSetup, float]:
        request = BenchRequest(hours=1, history_hours=1, seed=2, boot=boot, policies=STATIC_0)
        setup = prepare(request)
        return setup, run_policy(STATIC_0[0], setup).run.mean_wait_s

    setup, drifting = waits("fixed:10,fixed:50@0.5")
    assert setup.warmup is not None and setup.warmup.end == setup.scored.start
    assert setup.boot.start == setup.scored.start
    assert setup.boot.at(setup.scored.start + 1799.0) == FixedBoot(10)
    assert setup.boot.at(setup.scored.start + 1800.0) == FixedBoot(50)
    # counted from the history's start, the change would come before the scored window
    _, fast = waits("fixed:10")
    _, slow = waits("fixed:50")
    assert fast < drifting < slow


def test_the_json_names_the_schedule() -> None:
    request = BenchRequest(
        hours=1, seed=3, boot=" uniform:10:29 , uniform:60:180@0.5", policies=FAST
    )
    result = run_bench(request)
    data = result.to_dict()
    start = result.setup.scored.start
    assert data["boot"] == "uniform:10:29,uniform:60:180@0.5"
    assert data["boot_schedule"] == [
        {"boot": "uniform:10:29", "from_hour": 0.0, "start": start},
        {"boot": "uniform:60:180", "from_hour": 0.5, "start": start + 1800.0},
    ]
    steady = run_bench(BenchRequest(hours=1, seed=3, policies=FAST)).to_dict()
    assert steady["boot"] == "uniform:10:29"
    for drifted, before in zip(data["policies"], steady["policies"], strict=True):
        assert drifted["connects"] == before["connects"]  # the same events
    oracle, steady_oracle = data["policies"][-1], steady["policies"][-1]
    assert oracle["policy"] == "oracle" and oracle["instant_rate"] == 1.0
    assert oracle["node_seconds"] > steady_oracle["node_seconds"]  # slower boots cost more


@pytest.mark.parametrize("change", ["1", "1.5"])
def test_a_change_after_the_scored_window_is_refused(change: str) -> None:
    request = BenchRequest(hours=1, boot=f"fixed:10,fixed:50@{change}", policies=STATIC_0)
    with pytest.raises(BenchError, match=r"at or after the end of the scored window \(1 h\)"):
        prepare(request)


def spy_training(monkeypatch: pytest.MonkeyPatch) -> list[tuple[UserEvent, ...]]:
    """Record the events every model is trained on (the model is still trained)."""
    seen: list[tuple[UserEvent, ...]] = []

    def spying(history: History, **kwargs: Any) -> TrainedModel:
        seen.append(history.events)
        return train_model(history, **kwargs)

    monkeypatch.setattr("simulation.bench.setup.train_model", spying)
    return seen


def keys(events: tuple[UserEvent, ...]) -> set[tuple[str, float, str]]:
    return {(type(e).__name__, e.ts, e.user_id) for e in events}


@pytest.mark.slow
def test_the_model_never_sees_its_test_events(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = spy_training(monkeypatch)
    request = BenchRequest(hours=2, seed=2, policies=parse_policies("model,oracle"))
    result = run_bench(request)
    assert len(seen) == 1
    scored = result.setup.scored
    trained = seen[0]
    assert trained and scored.events
    assert not keys(trained) & keys(scored.events)
    assert not {e.user_id for e in trained} & scored.users  # another seed, other users
    data = result.to_dict()
    assert data["model"]["trained_on"]["source"] == "workload seed, seed 1002"
    horizon = bench_horizon(parse_boot_schedule(request.boot), request.seed, request.config())
    assert data["model"]["rows"] > 0 and data["model"]["horizon"] == horizon.as_dict()
    assert data["model"]["horizon_s"] == horizon.horizon_s
    assert horizon.horizon_s in (38.0, 39.0)  # a tick plus the 0.95 quantile of 10-29 s boots
    model = data["policies"][0]
    assert model["policy"] == "model" and model["connects"] == data["policies"][1]["connects"]
    assert result.setup.warmup is None
    again = run_bench(request).to_dict()  # the model too: same inputs, same JSON
    assert again == data


def test_the_model_policy_can_serve_a_time_to_connect_model() -> None:
    """``--model-type curve``: the hazard model serves the model policy; the engine reads the
    lead time's probability off its curves, so the run differs from the classifier's."""
    curve = BenchRequest(
        hours=4, seed=2, policies=parse_policies("model"), model_type=ModelType.CURVE
    )
    data = run_bench(curve).to_dict()
    model = data["model"]
    assert model["type"] == "curve" and model["version"].startswith("bench-curve-")
    assert 0 < model["curve_metrics"]["integrated_brier"] < model["test_metrics"]["brier"]
    assert model["test_metrics"]["horizon_s"] == model["horizon_s"]
    classifier = run_bench(dataclasses.replace(curve, model_type=ModelType.CLASSIFIER)).to_dict()
    assert classifier["model"]["type"] == "classifier"
    assert data["policies"][0]["connects"] == classifier["policies"][0]["connects"]
    assert data["policies"][0] != classifier["policies"][0]
    assert run_bench(curve).to_dict() == data  # deterministic


def test_a_trace_split_trains_on_the_earlier_part_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "trace.jsonl"
    write_jsonl(path, generate("seed", hours=4, seed=8))
    seen = spy_training(monkeypatch)
    setup = prepare(
        BenchRequest(trace=path, train_fraction=0.5, policies=parse_policies("model,oracle"))
    )
    scored = setup.scored
    assert max(e.ts for e in seen[0]) < scored.start <= min(e.ts for e in scored.events)
    assert scored.start == pytest.approx(T0 + 2 * 3600, abs=1.0)
    assert setup.warmup is not None and setup.warmup.events == seen[0]  # features only
    assert not keys(seen[0]) & keys(scored.events)


@pytest.mark.slow
def test_a_history_trains_on_the_same_users_before_and_warms_every_engine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen = spy_training(monkeypatch)
    request = BenchRequest(
        workload="shifts",
        hours=6,
        history_hours=18,
        seed=2,
        policies=parse_policies("heuristic,model,oracle"),
    )
    result = run_bench(request)
    setup = result.setup
    assert setup.scored.start == T0 + 18 * 3600 and setup.scored.end == T0 + 24 * 3600
    assert setup.warmup is not None and setup.warmup.events == seen[0]
    assert max(e.ts for e in seen[0]) < setup.scored.start
    assert setup.warmup.users & setup.scored.users  # the same users, earlier
    whole = list(generate("shifts", hours=24, seed=2))
    assert list(setup.warmup.events) + list(setup.scored.events) == whole
    data = result.to_dict()
    assert data["history"]["hours"] == 18.0 and data["hours"] == 6.0
    fed = warm_features(setup)
    assert fed is not None and len(fed) == len(setup.warmup.users)
    with pytest.raises(BenchError, match="only applies to a generated workload"):
        BenchRequest(history_hours=24, train_hours=24)


def test_training_on_the_scored_events_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "trace.jsonl"
    write_jsonl(path, generate("seed", hours=1, seed=8))
    request = BenchRequest(trace=path, train_trace=path, policies=parse_policies("model"))
    with pytest.raises(TrainingLeak, match="share 50 users"):
        prepare(request)


def test_check_separate_accepts_the_past_or_other_users_only() -> None:
    past = History((UserConnect(T0, "a"),), T0, T0 + 10, "past")
    now = History((UserConnect(T0 + 20, "a"),), T0 + 10, T0 + 30, "now")
    others = History((UserConnect(T0 + 20, "b"),), T0, T0 + 30, "others")
    check_separate(past, now)
    check_separate(others, now)
    with pytest.raises(TrainingLeak):
        check_separate(now, now)
    with pytest.raises(TrainingLeak):
        check_separate(History(now.events, T0, T0 + 30, "overlap"), now)


def test_split_and_trace_windows(tmp_path: Path) -> None:
    events: list[UserEvent] = [
        UserActivity(T0 + 0.5, "a", int(T0)),
        UserConnect(T0 + 10, "a"),
        UserDisconnect(T0 + 99.5, "a"),
    ]
    path = tmp_path / "t.jsonl"
    write_jsonl(path, events)
    history = trace_history(path, now=T0 + 1000)
    assert (history.start, history.end, len(history.events)) == (T0, T0 + 100, 3)
    assert history.connects == 1 and history.users == {"a"}
    early, late = split_history(history, 0.25)
    assert early.end == late.start == T0 + 25
    assert [type(e) for e in early.events] == [UserActivity, UserConnect]
    assert trace_history(path, hours=0.001, now=T0 + 1000).events == history.events[:1]
    with pytest.raises(BenchError):
        split_history(history, 1.0)
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(BenchError, match="no user events"):
        trace_history(tmp_path / "empty.jsonl")


def test_request_problems_are_reported_together() -> None:
    with pytest.raises(BenchError, match="needs a trace") as e:
        BenchRequest(train_fraction=0.5, hours=-1)
    assert "hours must be > 0" in str(e.value)
    with pytest.raises(BenchError, match="needs a training trace or a training fraction"):
        BenchRequest(trace=Path("t.jsonl"), policies=parse_policies("model"))
    with pytest.raises(BenchError, match=r"use a \.jsonl or \.parquet file"):
        prepare(BenchRequest(trace=Path(__file__), policies=parse_policies("oracle")))


def test_a_small_sweep_gives_frontiers_and_writes_a_png(tmp_path: Path) -> None:
    history = workload_history("seed", hours=1, seed=4)
    setup = BenchSetup(history, BootSchedule(FixedBoot(15)), seed=4, config=ServiceConfig())
    specs = parse_policies("static:1,seed-rule,heuristic,oracle")
    swept = run_sweep(specs, setup, targets=(0.9, 0.99), static_max=3)
    names = [r.policy for r in swept]
    assert names[:4] == ["static:0", "static:1", "static:2", "static:3"][: names.index("seed-rule")]
    assert {"seed-rule", "heuristic:0.9", "heuristic:0.99", "oracle"} <= set(names)
    fronts = frontiers(swept)
    assert set(fronts) == {"static", "seed-rule", "heuristic", "oracle"}
    for points in fronts.values():
        rates = [p.run.instant_rate for p in points]
        effs = [p.run.efficiency for p in points]
        assert rates == sorted(rates) and effs == sorted(effs, reverse=True)
    path = tmp_path / "frontier.png"
    plot_frontier(swept, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def point(policy: str, instant: float, efficiency: float) -> PolicyResult:
    run = RunResult(
        connects=10,
        instant_rate=instant,
        mean_wait_s=0.0,
        p95_wait_s=0.0,
        efficiency=efficiency,
        node_seconds=1.0,
        user_seconds=efficiency,
        nodes_created=1,
        busy_node_seconds=efficiency,
        instant=round(10 * instant),
        waited=10 - round(10 * instant),
        abandoned=0,
        events=20,
        ticks=0,
        peak_nodes=1,
        start=T0,
        end=T0 + 1.0,
    )
    return PolicyResult(policy, run)


def test_frontier_keeps_the_points_nothing_beats() -> None:
    points = [
        point("static:1", 0.90, 0.9),
        point("static:2", 0.99, 0.8),
        point("static:3", 0.98, 0.7),  # beaten by static:2 on both
        point("static:4", 0.999, 0.6),
        point("model:0.9", 0.95, 0.95),
    ]
    fronts = frontiers(points)
    assert [p.policy for p in fronts["static"]] == ["static:1", "static:2", "static:4"]
    assert [p.policy for p in fronts["model"]] == ["model:0.9"]
    best = best_at(points, "static", 0.98)
    assert best is not None and best.policy == "static:2"
    assert best_at(points, "static", 0.9995) is None


def test_a_config_override_is_typed_as_its_field() -> None:
    assert parse_override("max_idle_s=60") == ("max_idle_s", 60.0)
    assert parse_override("min_ready=3") == ("min_ready", 3)
    assert parse_override("calibrate=false") == ("calibrate", False)
    key, value = parse_override("plan_moments=4")  # an optional int
    assert (key, value) == ("plan_moments", 4) and isinstance(value, int)
    assert isinstance(parse_override("lead_time_s=190")[1], float)
    for bad in ("plan_moments=4.5", "nope=1", "min_ready"):
        with pytest.raises(BenchError):
            parse_override(bad)
