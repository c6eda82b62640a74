"""Fitting and measuring a time-to-connect model (``models.connect_curve``).

The rows are those of the one-window classifier (``training.dataset``), with their wait to
the next connect (``Dataset.wait_s``, censored at the horizon); the split is the same, by
time. Each horizon's calibration is fitted on the validation slice's curve at that horizon.

Measures on the test slice, weighted as every training metric is:

- at each horizon, the log loss, Brier score, calibration error and ROC AUC of ``F_k``
  against "connected within ``t_k``";
- the **integrated Brier score**: the Brier scores averaged over the horizon, each grid
  point standing for its period (the periods are equal, so a plain mean).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from models.classifier import SigmoidCalibration
from models.connect_curve import (
    PERIOD_FEATURE,
    ConnectCurveModel,
    CurveGrid,
    CurveKind,
    regrid,
)
from training.dataset import Dataset, Split
from training.evaluate import ModelMetrics, evaluate
from training.train import (
    TrainConfig,
    check_split,
    fit_booster,
    fit_calibration,
    model_data,
    split_of,
)

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

CurveProgress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: stages ``hazard``, ``horizon k/K``, ``calibrate``."""


def labels_at(wait_s: Floats, grid: CurveGrid) -> Bools:
    """``(rows, K)``: connected within each horizon."""
    out: Bools = wait_s[:, None] <= np.asarray(grid.horizons_s)[None, :]
    return out


def person_periods(
    X: Floats, wait_s: Floats, w: Floats, grid: CurveGrid
) -> tuple[Floats, Bools, Floats]:
    """The hazard model's rows: each row once per period it is still at risk in (no connect
    before the period's start), with the period's start as an extra feature, labelled by a
    connect within the period; weights carried over."""
    starts = np.asarray(grid.starts_s)
    ends = np.asarray(grid.horizons_s)
    at_risk = wait_s[:, None] > starts[None, :]
    rows, period = np.nonzero(at_risk)
    features = np.hstack([X[rows], starts[period][:, None]])
    labels: Bools = wait_s[rows] <= ends[period]
    return features, labels, w[rows]


@dataclass(frozen=True)
class CurveResult:
    model: ConnectCurveModel
    metrics: dict[str, Any]
    """:func:`curve_metrics` on the test slice."""
    test_curve: Floats
    split: Split
    calibration_note: str | None = None
    """Why a horizon's calibration is not the one asked for (the first such horizon's)."""


def fit_curve(
    dataset: Dataset,
    kind: CurveKind,
    grid: CurveGrid | None = None,
    config: TrainConfig | None = None,
    *,
    progress: CurveProgress | None = None,
) -> CurveResult:
    """Fit, calibrate and measure a curve model of ``kind`` on ``dataset.split(config.split)``;
    ``grid`` defaults to even periods up to the dataset's horizon."""
    config = config or TrainConfig()
    grid = grid or CurveGrid.even(dataset.spec.horizon_s)
    if grid.horizon_s > dataset.spec.horizon_s:
        raise ValueError(
            f"the curve reaches {grid.horizon_s:g} s, past the labels' {dataset.spec.horizon_s:g} s"
        )
    split = split_of(dataset, config)
    check_split(split, config)
    if len(dataset.wait_s) != len(dataset):
        raise ValueError("the dataset has no waits to learn (built without events?)")
    names = list(dataset.feature_names)
    boosters: tuple[Any, ...]
    valid_y = labels_at(split.validation.wait_s, grid)
    if kind is CurveKind.HAZARD:
        boosters = (
            fit_booster(
                person_periods(split.train.X, split.train.wait_s, split.train.w, grid),
                person_periods(
                    split.validation.X, split.validation.wait_s, split.validation.w, grid
                ),
                [*names, PERIOD_FEATURE],
                config,
                progress=progress,
                stage="hazard",
            ),
        )
    else:
        train_y = labels_at(split.train.wait_s, grid)
        boosters = tuple(
            fit_booster(
                (split.train.X, train_y[:, k], split.train.w),
                (split.validation.X, valid_y[:, k], split.validation.w),
                names,
                config,
                progress=progress,
                stage=f"horizon {k + 1}/{len(grid)}",
            )
            for k in range(len(grid))
        )
    uncalibrated = ConnectCurveModel(kind, grid, boosters, _identity(len(grid)), tuple(names))
    raw = uncalibrated.raw_curve(split.validation.X)
    fitted = [
        fit_calibration(raw[:, k], valid_y[:, k], split.validation.w, config)
        for k in range(len(grid))
    ]
    model = ConnectCurveModel(
        kind,
        grid,
        boosters,
        tuple(calibration for calibration, _ in fitted),
        tuple(names),
        data=model_data(dataset, config),
    )
    test_curve = model.curve(split.test.X)
    note = next((note for _, note in fitted if note is not None), None)
    return CurveResult(model, curve_metrics(test_curve, split.test, grid), test_curve, split, note)


def curve_metrics(curve: Floats, rows: Dataset, grid: CurveGrid) -> dict[str, Any]:
    """Per-horizon metrics and the integrated Brier score (module docstring)."""
    y = labels_at(rows.wait_s, grid)
    per: list[ModelMetrics] = [evaluate(y[:, k], curve[:, k], rows.w) for k in range(len(grid))]
    return {
        "horizons_s": list(grid.horizons_s),
        "integrated_brier": float(np.mean([m.brier for m in per])),
        "mean_log_loss": float(np.mean([m.log_loss for m in per])),
        "per_horizon": [
            {"horizon_s": h, **m.as_dict()} for h, m in zip(grid.horizons_s, per, strict=True)
        ],
    }


def measure_on(model: ConnectCurveModel, rows: Dataset, grid: CurveGrid) -> dict[str, Any]:
    """:func:`curve_metrics` of ``model``'s curve on ``rows`` at the horizons of ``grid``
    (another model's: the curve is read there, ``models.connect_curve.regrid``)."""
    return curve_metrics(regrid(model.curve(rows.X), model.grid, grid), rows, grid)


def _identity(n: int) -> tuple[SigmoidCalibration, ...]:
    return tuple(SigmoidCalibration(1.0, 0.0) for _ in range(n))
