"""Training a time-to-connect model as the training jobs do (``ModelType.CURVE``).

The hazard curve (``training.curve.fit_curve``) on the rows and the split a classifier
trains on, measured on the same test slice twice over:

- at the horizon, beside the baseline and the heuristic, as a classifier's run is
  (``training.train.side_by_side``): the curve's last point answers the classifier's
  question, and is what the promotion gates compare with a classifier (``training.promote``);
- at each horizon of its grid, with the integrated Brier score
  (``training.curve.curve_metrics``).

Only the hazard kind: it is the one a model directory holds (``models.curve_files``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar, TypeAlias

import numpy as np

from models.classifier import Floats
from models.connect_curve import PERIOD_FEATURE, ConnectCurveModel, CurveKind
from models.model_types import ModelType
from models.reference import FeatureReference
from training.curve import CurveResult, fit_curve
from training.dataset import Dataset, Split
from training.evaluate import ModelMetrics
from training.train import (
    Baseline,
    StageProgress,
    TrainConfig,
    TrainResult,
    fit_reference,
    timed_baseline,
    timed_comparison,
)


@dataclass(frozen=True)
class CurveTrainResult:
    """A fitted curve and its measures; read as a ``training.train.TrainResult`` is."""

    curve: CurveResult
    baseline: Baseline
    metrics: dict[str, ModelMetrics]
    """At the horizon, on the test slice: ``model`` (the curve's last point), ``baseline``,
    ``heuristic``. Per horizon: ``curve.metrics``."""
    test_probability: dict[str, Floats]
    seconds: dict[str, float]
    config: TrainConfig
    reference: FeatureReference | None = None
    """The training reference of the features (the train slice's, weighted)."""

    model_type: ClassVar[ModelType] = ModelType.CURVE

    @property
    def model(self) -> ConnectCurveModel:
        return self.curve.model

    @property
    def split(self) -> Split:
        return self.curve.split

    @property
    def trees(self) -> int:
        return int(self.model.boosters[0].num_trees())

    @property
    def calibration_note(self) -> str | None:
        return self.curve.calibration_note

    @property
    def calibration_method(self) -> str:
        """The horizons' calibration method, or each horizon's (comma-separated) when they
        differ (isotonic needs more positives than the first horizons may hold)."""
        methods = [c.method for c in self.model.calibrations]
        return methods[0] if len(set(methods)) == 1 else ",".join(methods)

    @property
    def gains(self) -> Floats:
        """Total split gain per feature of the hazard booster (the period start last)."""
        gains = self.model.boosters[0].feature_importance(importance_type="gain")
        return np.asarray(gains, dtype=np.float64)

    @property
    def gain_names(self) -> tuple[str, ...]:
        return (*self.model.feature_names, PERIOD_FEATURE)


def train_curve(
    dataset: Dataset, config: TrainConfig | None = None, *, progress: StageProgress | None = None
) -> CurveTrainResult:
    """Fit, calibrate and measure the hazard curve on ``dataset.split(config.split)``
    (``progress`` stages: ``hazard`` (trees), ``baseline``)."""
    config = config or TrainConfig()
    report = progress or (lambda stage, done, total: None)
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    fitted = fit_curve(dataset, CurveKind.HAZARD, config=config, progress=report)
    seconds["curve"] = time.perf_counter() - started
    baseline = timed_baseline(fitted.split.train, config, report, seconds)
    probabilities, metrics = timed_comparison(
        fitted.split.test, baseline, seconds, model=fitted.test_curve[:, -1]
    )
    return CurveTrainResult(
        curve=fitted,
        baseline=baseline,
        metrics=metrics,
        test_probability=probabilities,
        seconds=seconds,
        config=config,
        reference=fit_reference(fitted.split.train, dataset.feature_names, config),
    )


JobResult: TypeAlias = TrainResult | CurveTrainResult
"""What a training job made, of either model type (``training.retrain``)."""
