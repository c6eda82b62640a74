"""The scaler: its four invariants (with hypothesis), the thresholds' meaning, idle retirement."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.config import ServiceConfig
from service.demand import Demand, demand
from service.plan import Moment
from service.pool import PoolCounts, PoolView
from service.scaler import Decision, RefusalReason, band, check_need, decide

NOW = 1_732_500_000.0


def make_view(
    *,
    requested: int = 0,
    booting: int = 0,
    ready: int = 0,
    allocated: int = 0,
    terminating: int = 0,
    waiting: int = 0,
    idle_for: list[float] | None = None,
) -> PoolView:
    idle_for = idle_for if idle_for is not None else [5.0 * i for i in range(ready)][::-1]
    assert len(idle_for) == ready
    idle = tuple(
        sorted(((f"r{i}", NOW - age) for i, age in enumerate(idle_for)), key=lambda x: x[1])
    )
    boots = tuple((f"b{i}", NOW - 20.0 + i) for i in range(booting))
    counts = PoolCounts(requested, booting, ready, allocated, terminating, waiting)
    allocated_ids = frozenset(f"a{i}" for i in range(allocated))
    return PoolView(counts, idle, boots, allocated_ids)


def certain(k: int, support: int = 60) -> Demand:
    """Exactly ``k`` connects: need = k - 0.01 k at the default target."""
    return demand(np.ones(k), support=support)


CONFIG = ServiceConfig()


def window(demand: Demand, late: float = 0.0) -> tuple[Moment]:
    """The one-window plan of a demand over the lead time."""
    return (Moment(math.nan, demand, late),)


# --- the thresholds ------------------------------------------------------------------------


def test_up_when_the_shortfall_reaches_the_up_threshold() -> None:
    config = ServiceConfig(min_ready=0)
    assert band(3.69, config)[0] == 3  # shortfall 0.69 over 3 nodes: keep 3
    assert band(3.71, config)[0] == 4  # 0.71 >= 0.7: a fourth node
    assert band(0.65, config)[0] == 0


def test_down_when_the_surplus_without_the_node_is_at_least_the_down_threshold() -> None:
    config = ServiceConfig(min_ready=0)
    assert band(3.69, config)[1] == 4  # without the 5th: 3 - 3.69 < 0.3 -> 5 goes, 4 stays
    assert band(3.71, config)[1] == 5  # without the 5th: 4 - 3.71 = 0.29 < 0.3 -> 5 stays
    assert band(3.5, config)[1] == 4
    assert band(0.0, config) == (0, 1)


def test_min_ready_is_the_floor_of_the_band() -> None:
    assert band(0.0, CONFIG) == (2, 2)
    assert band(3.2, CONFIG) == (3, 4)


def test_an_empty_pool_gets_min_ready_nodes() -> None:
    d = decide(window(demand(np.zeros(0), support=51)), make_view(), CONFIG, NOW)
    assert (d.request, d.terminate, d.desired_warm) == (2, (), 2)
    assert d.reason.startswith("up 2")


def test_certain_demand_is_met_and_the_band_holds() -> None:
    view = make_view(ready=2)
    d = decide(window(certain(5)), view, CONFIG, NOW)
    assert d.request == 3 and d.desired_warm == 5
    held = decide(window(certain(5)), make_view(ready=5), CONFIG, NOW)
    assert (held.request, held.terminate) == (0, ())
    assert held.reason.startswith("hold")


def test_surplus_goes_booting_newest_first_then_idle_longest_first() -> None:
    view = make_view(booting=2, ready=6, idle_for=[300, 200, 100, 50, 10, 0])
    d = decide(window(certain(2)), view, CONFIG, NOW)  # need 1.98: band [2, 3]
    assert d.high == 3 and d.warm == 8
    assert d.terminate == ("b1", "b0", "r0", "r1", "r2")
    assert d.request == 0 and d.desired_warm == 3


def test_waiting_users_claim_coming_nodes_first() -> None:
    view = make_view(booting=3, waiting=3)
    d = decide(window(demand(np.zeros(0), support=51)), view, CONFIG, NOW)
    assert d.warm == 0 and d.request == 2 and d.terminate == ()


def test_idle_too_long_goes_down_to_the_low_edge_only() -> None:
    config = ServiceConfig(max_idle_s=600)
    # need 2.97: band [3, 4]; warm 4 is in the band
    p = certain(3)
    low, high = band(p.need(config.target_instant_rate), config)
    assert (low, high) == (3, 4)
    fresh = decide(window(p), make_view(ready=4, idle_for=[500, 400, 300, 10]), config, NOW)
    assert fresh.terminate == ()
    stale = decide(window(p), make_view(ready=4, idle_for=[900, 700, 300, 10]), config, NOW)
    assert stale.terminate == ("r0",) and stale.reason.startswith("retire 1")
    at_low = decide(window(p), make_view(ready=3, idle_for=[900, 700, 650]), config, NOW)
    assert at_low.terminate == ()


def test_requests_stop_at_the_budget_and_an_excess_is_shed() -> None:
    config = ServiceConfig(max_nodes=10)
    d = decide(window(certain(30)), make_view(ready=2, allocated=6), config, NOW)
    assert d.request == 2 and "budget" in d.reason
    at = decide(window(certain(30)), make_view(ready=2, allocated=8), config, NOW)
    assert at.request == 0 and at.reason.startswith("at budget")
    over = decide(window(certain(0)), make_view(ready=4, allocated=9), config, NOW)
    assert over.terminate == ("r0", "r1", "r2") and over.reason.startswith("over budget")


# --- the invariants --------------------------------------------------------------------------


@st.composite
def situations(draw: st.DrawFn) -> tuple[Demand, PoolView, ServiceConfig]:
    config = ServiceConfig(
        min_ready=draw(st.integers(0, 5)),
        scale_up_threshold=draw(st.floats(0.0, 1.0)),
        scale_down_threshold=draw(st.floats(0.0, 1.0)),
        max_idle_s=draw(st.floats(1.0, 2000.0)),
        target_instant_rate=draw(st.floats(0.5, 0.999)),
        max_nodes=draw(st.integers(1, 40)),
    )
    ready = draw(st.integers(0, 12))
    view = make_view(
        requested=draw(st.integers(0, 4)),
        booting=draw(st.integers(0, 8)),
        ready=ready,
        allocated=draw(st.integers(0, 30)),
        terminating=draw(st.integers(0, 3)),
        waiting=0 if ready else draw(st.integers(0, 6)),  # nobody waits while a node idles
        idle_for=draw(st.lists(st.floats(0.0, 3000.0), min_size=ready, max_size=ready)),
    )
    p = np.array(draw(st.lists(st.floats(0.0, 1.0), max_size=40)), dtype=np.float64)
    d = demand(p, baseline=draw(st.floats(0.0, 5.0)), support=config.max_nodes + 1)
    return d, view, config


def after(view: PoolView, decision: Decision) -> PoolView:
    """The view once the decision's commands are applied."""
    gone = set(decision.terminate)
    idle = tuple(i for i in view.idle if i[0] not in gone)
    boots = tuple(b for b in view.booting if b[0] not in gone)
    counts = dataclasses.replace(
        view.counts,
        requested=view.counts.requested + decision.request,
        booting=len(boots),
        ready=len(idle),
        terminating=view.counts.terminating + len(gone),
    )
    return PoolView(counts, idle, boots, view.allocated)


@settings(max_examples=400, deadline=None)
@given(situations())
def test_the_invariants_hold(situation: tuple[Demand, PoolView, ServiceConfig]) -> None:
    d, view, config = situation
    decision = decide(window(d), view, config, NOW)
    live = view.counts.live
    # 1. never above the budget
    if decision.request:
        assert live + decision.request <= config.max_nodes
    assert decision.request >= 0
    # 2. never terminates an allocated node (only idle or booting ones, each once)
    terminable = {i for i, _ in view.idle} | {b for b, _ in view.booting}
    assert set(decision.terminate) <= terminable
    assert not set(decision.terminate) & view.allocated
    assert len(set(decision.terminate)) == len(decision.terminate)
    # 3. never below the minimum ready nodes unless at the budget
    settled = live + decision.request - len(decision.terminate)  # once terminations are done
    assert decision.desired_warm >= config.min_ready or settled >= config.max_nodes
    if decision.terminate and settled < config.max_nodes:
        assert decision.desired_warm >= max(config.min_ready, decision.low)
    # 4. no node terminated and another requested in the same tick
    assert not (decision.request and decision.terminate)
    # and no thrash: the same demand on the resulting pool does not turn around
    again = decide(window(d), after(view, decision), config, NOW)
    if decision.terminate:
        assert again.request == 0
    if decision.request:
        assert again.terminate == ()


@settings(max_examples=200, deadline=None)
@given(situations())
def test_the_decision_lands_in_the_band_when_the_budget_allows(
    situation: tuple[Demand, PoolView, ServiceConfig],
) -> None:
    d, view, config = situation
    decision = decide(window(d), view, config, NOW)
    assert decision.low <= decision.high
    room = config.max_nodes - view.counts.live
    if room >= 0 and decision.request and decision.request < decision.low - decision.warm:
        assert view.counts.live + decision.request == config.max_nodes
    if decision.warm > decision.high and len(decision.terminate) == decision.warm - decision.high:
        assert decision.desired_warm == decision.high


def test_probabilities_not_means_the_same_mean_spread_needs_more() -> None:
    spread = demand(np.full(40, 0.05), support=51)  # E[D] = 2, uncertain
    sure = demand(np.ones(2), support=51)  # E[D] = 2, certain
    assert spread.mean == pytest.approx(sure.mean)
    a = decide(window(spread), make_view(), ServiceConfig(min_ready=0), NOW)
    b = decide(window(sure), make_view(), ServiceConfig(min_ready=0), NOW)
    assert a.request > b.request == 2


# --- unsound needs are refused -------------------------------------------------------------


def degenerate(mean: float = 1e-3, support: int = 51) -> Demand:
    """A distribution whose mass never reaches the target anywhere in its support (what a
    rounding error or a dropped probability made of a vanishing demand): need = support."""
    return Demand(mean=mean, tail=np.zeros(support), uncovered=1.0)


def test_a_need_above_what_the_demand_supports_is_refused_and_the_held_one_used() -> None:
    bad = degenerate()
    assert bad.need(CONFIG.target_instant_rate) == 51.0
    d = decide(window(bad), make_view(ready=2), CONFIG, NOW, held_need=3.2)
    assert d.refused is not None and d.refused.reason is RefusalReason.UNSUPPORTED
    assert d.refused.need == 51.0 and d.refused.bound == pytest.approx(bad.bound(0.99))
    assert d.refused.demand["mean"] == 1e-3
    assert d.need == 3.2 and (d.low, d.high) == band(3.2, CONFIG)
    assert d.request == 1 and d.desired_warm == 3  # the held need's band, not 51 nodes
    assert "refused need 51.00 (unsupported" in d.reason
    without = decide(window(bad), make_view(ready=6), CONFIG, NOW)  # none held: min_ready
    assert without.need == 0.0 and len(without.terminate) == 4


def test_a_need_that_is_not_a_number_is_refused() -> None:
    nan = Demand(mean=math.nan, tail=np.zeros(51))
    d = decide(window(nan), make_view(ready=2), CONFIG, NOW, held_need=1.0)
    assert d.refused is not None and d.refused.reason is RefusalReason.NOT_FINITE
    assert d.request == 0 and d.terminate == ()
    assert d.refused.reason.value == "not_finite" and math.isnan(d.refused.bound)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(0.0, 1.0), max_size=60),
    st.floats(0.0, 5.0),
    st.lists(st.floats(0.0, 1.0), max_size=20),
    st.floats(0.5, 0.999),
)
def test_a_sound_distribution_is_never_refused(
    p: list[float], baseline: float, frees: list[float], target: float
) -> None:
    d = demand(np.array(p), baseline=baseline, support=200, frees=np.array(frees))
    assert check_need(d, d.need(target), target) is None


# --- the timed plan ----------------------------------------------------------------------


def moment(after_s: float, k: int, *, late: float = 0.0, in_time: float = 1.0) -> Moment:
    """A moment by which exactly ``k`` connects come."""
    return Moment(after_s, certain(k), late, in_time)


def test_a_shortfall_no_node_asked_now_reaches_in_time_asks_for_nothing() -> None:
    config = ServiceConfig(min_ready=0)
    # 4 connects within 30 s, which a node asked for now (60 s boots at least) misses; by
    # the lead time the 4 nodes booting are ready and no more connects come
    soon = moment(30.0, 4, late=4.0, in_time=0.0)
    lead = moment(180.0, 4, late=0.0, in_time=0.95)
    d = decide((soon, lead), make_view(booting=4), config, NOW)
    assert d.request == 0 and d.terminate == ()
    # the same shortfall at a moment a node asked for now reaches is asked for
    reached = moment(150.0, 6, late=0.0, in_time=CONFIG.plan_in_time)
    up = decide((soon, reached, lead), make_view(booting=4), config, NOW)
    assert up.request == 2 and "for +150s" in up.reason


def test_plan_in_time_says_which_moments_a_request_now_is_for() -> None:
    soon = moment(90.0, 5, in_time=0.5)  # half the boots are done by then
    lead = moment(180.0, 2, in_time=1.0)
    view = make_view(ready=2)
    assert decide((soon, lead), view, ServiceConfig(min_ready=0), NOW).request == 0
    eager = decide((soon, lead), view, ServiceConfig(min_ready=0, plan_in_time=0.5), NOW)
    assert eager.request == 3 and "for +90s" in eager.reason


def test_a_node_an_earlier_moment_needs_is_not_terminated() -> None:
    config = ServiceConfig(min_ready=0)
    # 3 connects within 60 s; by the lead time frees leave nothing to cover (need 0)
    soon = moment(60.0, 3)
    lead = Moment(180.0, demand(np.ones(3), support=60, frees=np.ones(3)), 0.0)
    view = make_view(ready=3)
    assert decide((lead,), view, config, NOW).terminate  # the window alone sheds them
    kept = decide((soon, lead), view, config, NOW)
    assert kept.terminate == () and kept.reason.startswith("hold")


def test_a_plan_of_one_moment_is_the_window() -> None:
    """One moment is sized as the one window over the lead time, whatever its time and its
    chance of a node in time: up to the band's floor, down to its ceiling (oldest idle
    first), else hold."""
    expected = {
        (5, 2): (3, (), 4.95, "up 3"),  # need 4.95: band [5, 6]
        (2, 6): (0, ("r0", "r1", "r2"), 1.98, "down 3"),  # band [2, 3]
        (3, 3): (0, (), 2.97, "hold"),  # band [3, 4]
    }
    for (k, ready), (request, terminate, need, verb) in expected.items():
        one = decide(window(certain(k)), make_view(ready=ready), CONFIG, NOW)
        assert (one.request, one.terminate) == (request, terminate)
        assert one.need == pytest.approx(need) and one.reason.startswith(f"{verb};")
        for plan in ((moment(184.0, k),), (moment(184.0, k, in_time=0.2),)):
            d = decide(plan, make_view(ready=ready), CONFIG, NOW)
            assert (d.request, d.terminate, d.need, d.reason) == (
                one.request,
                one.terminate,
                one.need,
                one.reason,
            )


def test_a_refused_moment_holds_the_last_sound_need_for_the_whole_plan() -> None:
    bad = Demand(mean=1.0, tail=np.zeros(60), uncovered=1.0)  # a shortfall no count covers
    d = decide(
        (Moment(60.0, bad), moment(180.0, 1)), make_view(ready=2), CONFIG, NOW, held_need=4.2
    )
    assert d.refused is not None and d.need == pytest.approx(4.2) and d.request == 2  # band [4, 5]


def test_an_empty_plan_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one moment"):
        decide((), make_view(), CONFIG, NOW)
