"""Fitting and measuring time-to-connect models on a few hours of the seed workload."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest

from models.connect_curve import CurveGrid, CurveKind, carried_curve
from tests.lifecycle import FAST, seed_dataset, seed_table
from training.curve import CurveResult, curve_metrics, fit_curve, labels_at, person_periods
from training.dataset import Dataset, DatasetSpec, build_dataset
from training.train import train

LONG_HORIZON_S = 190.0
"""What 60-180 s boots ask for: a 180 s boot and a 10 s tick."""


@functools.cache
def long_dataset() -> Dataset:
    return build_dataset(seed_table(), DatasetSpec(horizon_s=LONG_HORIZON_S))


@functools.cache
def fitted(kind: CurveKind, long: bool = False) -> CurveResult:
    return fit_curve(long_dataset() if long else seed_dataset(), kind, config=FAST)


def test_person_periods_hold_each_row_while_it_is_at_risk() -> None:
    grid = CurveGrid.even(40.0, 4)
    X = np.array([[1.0], [2.0], [3.0]])
    wait = np.array([12.0, np.inf, 40.0])
    features, labels, weights = person_periods(X, wait, np.array([1.0, 120.0, 1.0]), grid)
    assert features[:, 0].tolist() == [1, 1, 2, 2, 2, 2, 3, 3, 3, 3]
    assert features[:, 1].tolist() == [0, 10, 0, 10, 20, 30, 0, 10, 20, 30]
    assert labels.tolist() == [False, True, False, False, False, False, False, False, False, True]
    assert weights.tolist() == [1, 1, 120, 120, 120, 120, 1, 1, 1, 1]


def test_the_dataset_keeps_each_rows_wait_within_the_horizon() -> None:
    dataset = seed_dataset()
    assert len(dataset.wait_s) == len(dataset)
    assert np.array_equal(np.isfinite(dataset.wait_s), dataset.y)
    waits = dataset.wait_s[dataset.y]
    assert waits.min() > 0 and waits.max() <= dataset.spec.horizon_s
    test = dataset.split().test
    assert len(test.wait_s) == len(test)


@pytest.mark.parametrize("kind", list(CurveKind))
def test_a_fitted_curve_is_non_decreasing_and_calibrated_at_each_horizon(kind: CurveKind) -> None:
    result = fitted(kind)
    curve = result.test_curve
    assert curve.shape == (len(seed_dataset().split().test), len(result.model.grid))
    assert np.all(np.diff(curve, axis=1) >= 0) and curve.min() >= 0 and curve.max() <= 1
    for horizon in result.metrics["per_horizon"]:
        assert horizon["roc_auc"] > 0.9
        assert horizon["ece"] < 0.01
    # the last horizon is the classifier's question: as good an answer
    classifier = train(seed_dataset(), FAST).metrics["model"]
    assert result.metrics["per_horizon"][-1]["log_loss"] < classifier.log_loss * 1.05


def test_on_a_long_horizon_the_curve_beats_carrying_one_probability_by_a_constant_hazard() -> None:
    """With 60-180 s boots the horizon is 190 s; what the service did with a one-window
    probability for shorter times (a constant hazard) is miscalibrated early on."""
    dataset = long_dataset()
    hazard = fitted(CurveKind.HAZARD, long=True)
    grid = hazard.model.grid
    classifier = train(dataset, FAST)
    p = classifier.test_probability["model"]
    carried = carried_curve(p, grid.horizon_s, grid)
    baseline = curve_metrics(carried, classifier.split.test, grid)
    assert hazard.metrics["integrated_brier"] < 0.9 * baseline["integrated_brier"]
    assert hazard.metrics["mean_log_loss"] < 0.9 * baseline["mean_log_loss"]


def test_labels_at_each_horizon() -> None:
    grid = CurveGrid.even(40.0, 2)
    assert labels_at(np.array([5.0, 25.0, np.inf]), grid).tolist() == [
        [True, True],
        [False, True],
        [False, False],
    ]


def test_a_curve_needs_waits_and_a_grid_within_the_labels() -> None:
    dataset = seed_dataset()
    with pytest.raises(ValueError, match="waits"):
        fit_curve(dataclasses.replace(dataset, wait_s=np.empty(0)), CurveKind.HAZARD)
    with pytest.raises(ValueError, match="past the labels"):
        fit_curve(dataset, CurveKind.HAZARD, CurveGrid.even(2 * dataset.spec.horizon_s))
