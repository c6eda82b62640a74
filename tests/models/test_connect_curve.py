"""The time-to-connect curve's pure parts: the grid, hazards to a curve, reading it."""

from __future__ import annotations

import numpy as np
import pytest

from models.classifier import SigmoidCalibration
from models.connect_curve import (
    ConnectCurveModel,
    CurveGrid,
    CurveKind,
    constant_hazard,
    curve_from_hazards,
    median_wait,
    non_decreasing,
    regrid,
    within,
)
from models.scoring import Scores


def test_an_even_grid_splits_the_horizon() -> None:
    grid = CurveGrid.even(40.0, 4)
    assert grid.horizons_s == (10.0, 20.0, 30.0, 40.0)
    assert grid.starts_s == (0.0, 10.0, 20.0, 30.0)
    assert grid.horizon_s == 40.0 and len(grid) == 4


@pytest.mark.parametrize("horizons", [(), (10.0, 10.0), (20.0, 10.0), (0.0, 5.0), (float("inf"),)])
def test_a_grid_that_is_not_increasing_and_positive_is_refused(
    horizons: tuple[float, ...],
) -> None:
    with pytest.raises(ValueError, match="curve"):
        CurveGrid(horizons)


def test_hazards_make_a_curve_of_survival() -> None:
    curve = curve_from_hazards(np.array([[0.5, 0.5, 0.0], [0.0, 1.0, 0.3], [2.0, -1.0, 0.0]]))
    np.testing.assert_allclose(curve, [[0.5, 0.75, 0.75], [0.0, 1.0, 1.0], [1.0, 1.0, 1.0]])


def test_a_curve_is_made_non_decreasing_and_within_unit() -> None:
    np.testing.assert_allclose(non_decreasing(np.array([[0.2, 0.1, 1.3]])), [[0.2, 0.2, 1.0]])


def test_the_curve_is_linear_between_horizons_and_constant_hazard_beyond() -> None:
    grid = CurveGrid.even(40.0, 2)
    curve = np.array([[0.2, 0.36]])
    assert within(curve, grid, 0.0)[0] == 0.0
    assert within(curve, grid, 10.0)[0] == pytest.approx(0.1)
    assert within(curve, grid, 30.0)[0] == pytest.approx(0.28)
    assert within(curve, grid, 40.0)[0] == pytest.approx(0.36)
    assert within(curve, grid, 80.0)[0] == pytest.approx(1 - 0.64**2)
    np.testing.assert_allclose(constant_hazard(np.array([0.36]), 40.0, 20.0), [0.2])
    np.testing.assert_allclose(constant_hazard(np.array([0.36]), 40.0, 40.0), [0.36])


def test_a_curve_is_read_at_another_grid_s_horizons() -> None:
    """How a curve champion is measured at a curve candidate's horizons."""
    grid = CurveGrid.even(40.0, 2)
    curve = np.array([[0.2, 0.36], [0.0, 0.5]])
    assert regrid(curve, grid, CurveGrid.even(40.0, 2)) is curve
    np.testing.assert_allclose(
        regrid(curve, grid, CurveGrid((10.0, 20.0, 40.0, 80.0))),
        [[0.1, 0.2, 0.36, 1 - 0.64**2], [0.0, 0.0, 0.5, 0.75]],
    )


def test_the_median_wait_is_where_the_curve_reaches_one_half() -> None:
    grid = CurveGrid.even(40.0, 4)
    curve = np.array([[0.6, 0.7, 0.8, 0.9], [0.1, 0.3, 0.7, 0.9], [0.1, 0.2, 0.3, 0.4]])
    np.testing.assert_allclose(median_wait(curve, grid), [10 * 0.5 / 0.6, 25.0, np.inf])


class _Constant:
    """A booster that predicts the last column of what it is given, times a factor."""

    def __init__(self, factor: float) -> None:
        self.factor = factor

    def predict(self, X: np.ndarray, num_threads: int = 1) -> np.ndarray:
        return np.clip(X[:, -1] * self.factor, 0.0, 1.0)


def test_a_hazard_model_reads_each_period_start() -> None:
    """The hazard booster sees the period's start as its last column: here h = start / 100."""
    grid = CurveGrid.even(40.0, 4)
    identity = tuple(SigmoidCalibration(1.0, 0.0) for _ in grid.horizons_s)
    model = ConnectCurveModel(CurveKind.HAZARD, grid, (_Constant(0.01),), identity, ("x",))
    raw = model.raw_curve(np.zeros((2, 1)))
    expected = curve_from_hazards(np.array([[0.0, 0.1, 0.2, 0.3]] * 2))
    np.testing.assert_allclose(raw, expected)
    np.testing.assert_allclose(model.curve(np.zeros((2, 1))), expected, atol=1e-9)


class _RowAndPeriod:
    """A booster whose hazard is the row's feature plus the period's start / 100."""

    def predict(self, X: np.ndarray, num_threads: int = 1) -> np.ndarray:
        return np.clip(X[:, 0] + X[:, -1] / 100.0, 0.0, 1.0)


def test_each_row_gets_its_own_hazards_from_one_pass_over_all_periods() -> None:
    grid = CurveGrid.even(30.0, 3)  # period starts 0, 10, 20
    identity = tuple(SigmoidCalibration(1.0, 0.0) for _ in grid.horizons_s)
    model = ConnectCurveModel(CurveKind.HAZARD, grid, (_RowAndPeriod(),), identity, ("x",))
    rows = np.array([[0.0], [0.5], [0.01]])
    hazards = np.array([[0.0, 0.1, 0.2], [0.5, 0.6, 0.7], [0.01, 0.11, 0.21]])
    np.testing.assert_allclose(model.raw_curve(rows), curve_from_hazards(hazards))


def test_a_model_needs_its_boosters_and_calibrations() -> None:
    grid = CurveGrid.even(40.0, 2)
    one = (SigmoidCalibration(1.0, 0.0),)
    with pytest.raises(ValueError, match="booster"):
        ConnectCurveModel(CurveKind.PER_HORIZON, grid, (_Constant(1.0),), one * 2, ("x",))
    with pytest.raises(ValueError, match="calibration"):
        ConnectCurveModel(CurveKind.HAZARD, grid, (_Constant(1.0),), one, ("x",))


def test_scores_carry_their_probability_to_a_curve() -> None:
    scores = Scores(np.array([0.36, 0.0]), np.array([True, False]), "1", 40.0)
    grid, curve = scores.curve()
    assert grid == CurveGrid.even(40.0)
    np.testing.assert_allclose(curve[:, -1], [0.36, 0.0])
    assert curve[0, 3] == pytest.approx(0.2)  # 20 s: 1 - 0.64 ** 0.5
    assert np.all(curve[1] == 0.0)
