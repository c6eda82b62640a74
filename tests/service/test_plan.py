"""The timed plan (service.plan): moments, spreading a probability over them, and what is
expected by each."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.connect_curve import constant_hazard
from service.demand import demand
from service.plan import MAX_PLAN_MOMENTS, moment_count, moments_s, plan, spread


def test_moments_are_even_up_to_the_lead_time() -> None:
    assert moments_s(180.0, 4).tolist() == [45.0, 90.0, 135.0, 180.0]
    assert moments_s(40.0, 1).tolist() == [40.0]
    with pytest.raises(ValueError, match="at least one moment"):
        moments_s(40.0, 0)


def test_spread_ends_at_the_lead_probability_and_follows_the_curve() -> None:
    fractions = np.array([0.25, 0.5, 0.75, 1.0])
    raw = np.array(
        [
            [0.4, 0.45, 0.48, 0.5],  # a connect soon or not at all
            [0.0, 0.0, 0.1, 0.5],  # a connect late in the window
        ]
    )
    timed = spread(np.array([0.2, 0.2]), raw, fractions)
    assert timed[:, -1] == pytest.approx([0.2, 0.2])
    assert timed[0, 0] > 0.15 and timed[1, 1] == pytest.approx(0.0)
    assert np.all(np.diff(timed, axis=1) >= 0)


def test_a_row_without_a_curve_is_spread_by_a_constant_hazard() -> None:
    fractions = np.array([0.25, 0.5, 1.0])
    timed = spread(np.array([0.6]), np.zeros((1, 3)), fractions)
    expected = [float(constant_hazard(np.array([0.6]), 1.0, f)[0]) for f in fractions]
    assert timed[0] == pytest.approx(expected)


def test_without_curves_the_spread_is_the_constant_hazard_of_the_scores() -> None:
    """A scorer without curves carries its probability by a constant hazard (``Scores.within``):
    spreading needs no curve to be computed for it, and comes out the same."""
    lead = np.array([0.0, 0.05, 0.6, 1.0])
    horizon, moments = 40.0, np.array([10.0, 20.0, 30.0, 40.0])
    carried = np.column_stack([constant_hazard(np.array([0.3] * 4), horizon, t) for t in moments])
    fractions = moments / moments[-1]
    timed = spread(lead, None, fractions)
    assert timed == pytest.approx(spread(lead, carried, fractions), abs=1e-12)
    assert timed[2].tolist() == pytest.approx([1 - 0.4**f for f in fractions])
    assert timed[3].tolist() == [1.0] * 4 and timed[0].tolist() == [0.0] * 4


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(0.0, 1.0), st.lists(st.floats(0.0, 1.0), min_size=5, max_size=5)),
        min_size=1,
        max_size=20,
    )
)
def test_spread_is_a_probability_non_decreasing_in_time(
    rows: list[tuple[float, list[float]]],
) -> None:
    lead = np.array([r[0] for r in rows])
    raw = np.array([r[1] for r in rows])  # not even monotone: a scorer's rounding
    timed = spread(lead, raw, np.linspace(0.2, 1.0, 5))
    assert np.all((timed >= 0.0) & (timed <= 1.0))
    assert np.all(np.diff(timed, axis=1) >= -1e-12)
    assert timed[:, -1] == pytest.approx(np.clip(lead, 0.0, 1.0))


def test_each_moment_counts_its_connects_frees_and_late_nodes() -> None:
    moments = np.array([60.0, 120.0])
    probabilities = np.array([[0.5, 1.0], [0.0, 0.5]])
    frees = np.array([[0.0, 1.0]])  # one session ends between the moments
    ready = np.array([[0.25, 1.0], [0.0, 0.5]])  # two nodes on their way
    moments_ = plan(
        probabilities,
        moments=moments,
        baseline_rate=0.01,
        frees=frees,
        ready=ready,
        in_time=np.array([0.0, 0.5]),
        support=10,
        exact=256,
    )
    first, second = moments_
    assert (first.after_s, second.after_s) == (60.0, 120.0)
    assert first.demand.mean == pytest.approx(0.5 + 0.6)
    assert second.demand.mean == pytest.approx(1.5 + 1.2)
    assert (first.demand.frees, second.demand.frees) == (0.0, 1.0)
    assert first.late == pytest.approx(1.75) and second.late == pytest.approx(0.5)
    assert (first.in_time, second.in_time) == (0.0, 0.5)
    alone = demand(probabilities[:, 1], baseline=1.2, support=10, frees=frees[:, 1])
    assert second.demand.tail == pytest.approx(alone.tail)


def test_nothing_coming_and_nothing_busy_is_a_plan_too() -> None:
    (only,) = plan(
        np.zeros((0, 1)),
        moments=np.array([40.0]),
        baseline_rate=0.0,
        frees=None,
        ready=np.zeros((0, 1)),
        in_time=np.array([1.0]),
        support=5,
        exact=256,
    )
    assert only.demand.mean == 0.0 and only.late == 0.0


def test_unless_configured_a_plan_has_a_moment_per_four_ticks_of_lead_time() -> None:
    assert moment_count(40.0, 10.0, None) == 1  # 10-29 s boots: the one window
    assert moment_count(186.0, 10.0, None) == 4  # 60-180 s boots
    assert moment_count(5.0, 10.0, None) == 1
    assert moment_count(1e6, 10.0, None) == MAX_PLAN_MOMENTS
    assert moment_count(186.0, 10.0, 1) == 1 and moment_count(40.0, 10.0, 8) == 8
