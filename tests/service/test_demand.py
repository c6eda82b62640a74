"""The demand distribution (Poisson-binomial plus Poisson) and the need for a service level."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.demand import NEGLIGIBLE_SHORTFALL, demand
from service.scaler import check_need


def brute_pmf(p: list[float]) -> np.ndarray:
    """Enumerate every outcome: the exact distribution of a sum of Bernoullis."""
    pmf = np.zeros(len(p) + 1)
    for outcome in itertools.product([0, 1], repeat=len(p)):
        weight = math.prod(q if o else 1 - q for q, o in zip(p, outcome, strict=True))
        pmf[sum(outcome)] += weight
    return pmf


PROBS = st.lists(st.floats(0.0, 1.0), min_size=0, max_size=10)


@settings(max_examples=150, deadline=None)
@given(PROBS)
def test_the_distribution_is_the_exact_sum_of_bernoullis(p: list[float]) -> None:
    d = demand(np.array(p, dtype=np.float64), support=12)
    want_tail = 1.0 - np.cumsum(brute_pmf(p))
    want_tail = np.concatenate([want_tail, np.zeros(13)])[:12]
    np.testing.assert_allclose(d.tail, np.maximum(want_tail, 0.0), atol=1e-9)
    assert d.mean == pytest.approx(sum(p))
    pmf = brute_pmf(p)
    for s in range(13):  # E[(D - s)+] by definition
        want = sum(max(0, k - s) * pmf[k] for k in range(len(pmf)))
        assert d.shortfall(s) == pytest.approx(want, abs=1e-9)


def test_many_small_probabilities_are_summed_as_a_poisson_within_le_cams_bound() -> None:
    rng = np.random.default_rng(3)
    p = rng.uniform(0, 0.02, 1500)
    exact = demand(p, support=40, exact=len(p))
    approx = demand(p, support=40, exact=16)
    rest = np.sort(p)[:-16]
    assert np.abs(exact.tail - approx.tail).max() <= 2 * float((rest**2).sum())
    assert approx.mean == pytest.approx(float(p.sum()))


def test_the_baseline_adds_a_poisson() -> None:
    d = demand(np.zeros(0), baseline=2.0, support=30)
    pmf = [math.exp(-2) * 2**k / math.factorial(k) for k in range(30)]
    np.testing.assert_allclose(d.tail, 1 - np.cumsum(pmf), atol=1e-12)
    assert d.mean == 2.0


def test_bad_values_count_as_nothing_or_certainty() -> None:
    d = demand(np.array([np.nan, 1.5, -0.2, 0.0]), support=5)
    assert d.mean == 1.0
    np.testing.assert_allclose(d.tail, [1, 0, 0, 0, 0], atol=1e-12)  # exactly one connect
    assert d.shortfall(0) == 1.0 and d.shortfall(1) == pytest.approx(0.0)


def test_certain_demand_needs_that_many_nodes_minus_the_allowed_share() -> None:
    d = demand(np.ones(3), support=10)
    # E[(3 - s)+] = 3 - s; allowed 1 % of 3: need 3 - 0.03
    assert d.need(0.99) == pytest.approx(2.97)
    assert math.ceil(d.need(0.99)) == 3
    assert demand(np.zeros(4), support=10).need(0.99) == 0.0


def test_need_sizes_for_the_tail_not_the_mean() -> None:
    p = np.full(40, 0.05)  # E[D] = 2
    d = demand(p, support=30)
    need = d.need(0.99)
    assert need > d.mean + 1.5
    # the shortfall at the need is the allowed share (interpolated between whole nodes)
    s = math.ceil(need)
    assert d.shortfall(s) <= 0.01 * d.mean < d.shortfall(s - 1)


def test_the_need_is_capped_at_the_support() -> None:
    assert demand(np.ones(20), support=5).need(0.99) == 5.0


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.floats(0.0, 1.0), max_size=30),
    st.floats(0.0, 3.0),
    st.floats(0.5, 0.999),
    st.floats(0.5, 0.999),
)
def test_a_higher_target_never_needs_fewer_nodes(
    p: list[float], baseline: float, a: float, b: float
) -> None:
    d = demand(np.array(p, dtype=np.float64), baseline=baseline, support=40)
    low, high = sorted((a, b))
    assert d.need(low) <= d.need(high) + 1e-9
    shortfalls = d.shortfalls()
    assert np.all(np.diff(shortfalls) <= 1e-12)  # more nodes, less shortfall
    assert d.quantile(low) <= d.quantile(high)


def test_frees_cover_part_of_the_demand() -> None:
    p = np.full(10, 0.3)
    plain = demand(p, support=20)
    covered = demand(p, support=20, frees=np.full(6, 0.5))
    assert covered.frees == pytest.approx(3.0)
    assert covered.mean == plain.mean  # the connects expected do not change
    for warm in range(6):
        assert covered.shortfall(warm) < plain.shortfall(warm)
    assert covered.need(0.99) < plain.need(0.99)


def test_frees_match_a_brute_force_net_distribution() -> None:
    rng = np.random.default_rng(3)
    p, f = rng.uniform(0, 0.6, 7), rng.uniform(0, 0.8, 5)
    got = demand(p, support=12, frees=f)
    draws = 400_000
    net = (rng.random((draws, 7)) < p).sum(axis=1) - (rng.random((draws, 5)) < f).sum(axis=1)
    for warm in range(4):
        brute = float(np.maximum(net - warm, 0).mean())
        assert got.shortfall(warm) == pytest.approx(brute, abs=0.01)


def test_no_frees_leaves_the_demand_as_it_was() -> None:
    p = np.linspace(0.01, 0.9, 30)
    with_none, plain = demand(p, support=40, frees=np.zeros(0)), demand(p, support=40)
    assert with_none.mean == plain.mean and with_none.uncovered == plain.uncovered
    np.testing.assert_allclose(with_none.tail, plain.tail, atol=1e-12)


# --- vanishing demand: the need stays sound where 1 % of E[D] is below rounding -------------


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 400),
    st.floats(-18.0, -5.0),
    st.floats(-18.0, -5.0),
    st.integers(0, 40),
    st.floats(0.5, 0.999),
)
def test_the_need_never_exceeds_what_the_demand_supports(
    users: int, log_scale: float, log_baseline: float, busy: int, target: float
) -> None:
    rng = np.random.default_rng(users * 41 + busy)
    p = rng.uniform(0.0, 1.0, users) * 10**log_scale
    frees = rng.uniform(0.0, 0.5, busy)
    d = demand(p, baseline=10**log_baseline, support=501, frees=frees)
    need = d.need(target)
    assert d.bound(target) <= d.mean + 1 / (4 * (1 - target)) + 1e-9
    assert check_need(d, need, target) is None  # within the bound, to rounding
    assert need < 2  # E[D] below 0.005: no second node is needed


def test_negligible_probabilities_keep_their_mass() -> None:
    """10,000 users at 1e-13 each: E[D] = 1e-9, all of it in the distribution."""
    d = demand(np.full(10_000, 1e-13), support=501)
    assert d.mean == pytest.approx(1e-9)
    assert d.tail[0] == pytest.approx(1e-9, rel=1e-3)
    assert d.shortfall(1) == pytest.approx(0.0, abs=1e-15)
    assert d.need(0.99) <= 1.0


def test_a_shortfall_below_the_negligible_one_needs_no_node() -> None:
    d = demand(np.zeros(0), baseline=1e-12, support=501, frees=np.full(12, 0.2))
    assert d.need(0.99) == 0.0
    assert d.allowed(0.99) == NEGLIGIBLE_SHORTFALL


def test_the_bound_is_the_mean_plus_the_variance_over_four_allowed() -> None:
    p = np.full(40, 0.05)
    d = demand(p, support=30)
    assert d.variance == pytest.approx(40 * 0.05 * 0.95)
    assert d.bound(0.99) == pytest.approx(2.0 + 1.9 / (4 * 0.02))
    assert d.need(0.99) < d.bound(0.99)
    summary = d.summary()
    assert summary["mean"] == pytest.approx(2.0) and len(summary["tail_head"]) == 8
