"""Training: LightGBM with a logistic-regression baseline, calibrated, on a time split.

On the train slice: a LightGBM booster (early-stopped on the validation slice's log loss)
and the scikit-learn baseline (standardised features, logistic regression), both weighted
by the rows' sample weights. On the validation slice: the calibration of the booster
(sigmoid by default; isotonic only when the slice holds ``min_isotonic_positives``
positives). On the test slice: the metrics of the calibrated model, of the raw booster, of
the baseline and of the heuristic, side by side. And the training reference of the
features (``models.reference``: quantile bins of the train slice and the weighted share of
its rows in each), stored with the version for measuring live drift.

No class reweighting (``is_unbalance``, ``scale_pos_weight``): the scaler consumes the
probabilities as they are. Positives are rare (a few percent of the rows, far fewer in a
large population), and a leaf of a few positives among near-zero hessians would take a
huge value; ``max_delta_step`` bounds every leaf's step, which keeps the boosting stable.

Deterministic: the same dataset and config give the same booster (LightGBM's
``deterministic`` mode with a fixed seed and thread count).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Final, Literal, Protocol

import numpy as np
import numpy.typing as npt

from features.definitions import seen_within
from models.classifier import (
    Calibration,
    ConnectClassifier,
    Floats,
    IsotonicCalibration,
    SigmoidCalibration,
    logit,
)
from models.defaults import DEFAULT_RECENT_CUTOFF_S
from models.heuristic import HeuristicScorer
from models.model_types import ModelType
from models.reference import DEFAULT_BINS, FeatureReference
from training.dataset import Dataset, Split
from training.defaults import DEFAULT_CALIBRATION, DEFAULT_MIN_POSITIVES, DEFAULT_TRAIN_SEED
from training.evaluate import ModelMetrics, evaluate

Bools = npt.NDArray[np.bool_]
StageProgress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: stages ``lightgbm`` (trees), ``baseline``, ``calibrate``."""

SPLIT: Final = (0.6, 0.2, 0.2)


class BadTrainingData(ValueError):
    """The data cannot make a model (empty, too small, a single class): nothing is registered."""


@dataclass(frozen=True, slots=True)
class TrainConfig:
    max_trees: int = 1000
    learning_rate: float = 0.05
    num_leaves: int = 31
    min_data_in_leaf: int = 100
    lambda_l2: float = 1.0
    max_delta_step: float = 1.0
    early_stopping_rounds: int = 50
    calibration: Literal["sigmoid", "isotonic"] = DEFAULT_CALIBRATION
    min_isotonic_positives: int = 1000
    min_positives: int = DEFAULT_MIN_POSITIVES
    min_rows: int = 100
    seed: int = DEFAULT_TRAIN_SEED
    threads: int = 1
    """LightGBM threads. One: on a small shared machine OpenMP's spinning threads slow
    training down by orders of magnitude as soon as another process wants a core."""
    baseline_max_iter: int = 1000
    split: tuple[float, float, float] = SPLIT
    reference_bins: int = DEFAULT_BINS
    """Quantile bins per feature of the training reference (live drift is measured on them)."""
    reference_recent_s: float = DEFAULT_RECENT_CUTOFF_S
    """The reference is taken over the rows of users seen within this long: the users the
    service scores (its ``recent_cutoff_s``), not the quiet ones it leaves out."""

    def __post_init__(self) -> None:
        if self.max_trees < 1 or self.early_stopping_rounds < 1:
            raise ValueError("max_trees and early_stopping_rounds must be >= 1")
        if self.calibration not in ("sigmoid", "isotonic"):
            raise ValueError(f"calibration must be sigmoid or isotonic, not {self.calibration!r}")
        if self.threads < 1:
            raise ValueError("threads must be >= 1 (a fixed count keeps training deterministic)")
        if self.reference_bins < 1:
            raise ValueError("reference_bins must be >= 1")
        if not self.reference_recent_s > 0:
            raise ValueError("reference_recent_s must be > 0")

    def lightgbm_params(self) -> dict[str, Any]:
        return {
            "objective": "binary",
            "metric": "binary_logloss",
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_data_in_leaf,
            "lambda_l2": self.lambda_l2,
            "max_delta_step": self.max_delta_step,
            "seed": self.seed,
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": self.threads,
            "verbosity": -1,
        }

    def as_params(self) -> dict[str, Any]:
        """Flat, for MLflow."""
        params = asdict(self)
        params["split"] = ",".join(str(f) for f in self.split)
        return params


@dataclass(frozen=True)
class Baseline:
    """The scikit-learn baseline: standardised features, logistic regression."""

    pipeline: Any

    def predict_proba(self, features: Floats) -> Floats:
        out: Floats = np.asarray(self.pipeline.predict_proba(features)[:, 1], dtype=np.float64)
        return out


@dataclass(frozen=True)
class TrainResult:
    classifier: ConnectClassifier
    baseline: Baseline
    split: Split
    metrics: dict[str, ModelMetrics]
    """Test-slice metrics: ``model`` (calibrated), ``model_raw``, ``baseline``, ``heuristic``."""
    test_probability: dict[str, Floats]
    trees: int
    calibration_note: str | None
    seconds: dict[str, float]
    config: TrainConfig
    gains: Floats = field(repr=False, default_factory=lambda: np.zeros(0))
    """Total split gain per feature (LightGBM importance)."""
    reference: FeatureReference | None = None
    """The training reference of the features (the train slice's, weighted)."""

    model_type: ClassVar[ModelType] = ModelType.CLASSIFIER

    @property
    def calibration_method(self) -> str:
        return self.classifier.calibration.method

    @property
    def gain_names(self) -> tuple[str, ...]:
        """The names of :attr:`gains`, in order."""
        return self.classifier.feature_names


def check_split(split: Split, config: TrainConfig) -> None:
    """:class:`BadTrainingData` with a clear reason unless every slice can do its job."""
    rows = len(split.train) + len(split.validation) + len(split.test)
    if not rows:
        raise BadTrainingData(
            "no training rows: the range holds no user events, or too few to fill one horizon"
        )
    positives = split.train.positives + split.validation.positives + split.test.positives
    if positives == 0:
        raise BadTrainingData(
            f"no user connects within the horizon in {rows} rows: a model needs both classes"
        )
    if positives == rows:
        raise BadTrainingData(f"every one of {rows} rows is a connect: a model needs both classes")
    for name in ("train", "validation", "test"):
        part: Dataset = getattr(split, name)
        if len(part) < config.min_rows or part.positives < config.min_positives:
            raise BadTrainingData(
                f"the {name} slice has {len(part)} rows and {part.positives} connects; it needs "
                f"at least {config.min_rows} rows and {config.min_positives} connects: "
                "use a longer range of events"
            )
        if part.positives == len(part):
            raise BadTrainingData(f"the {name} slice holds connects only")


class BoosterFit(Protocol):
    """How :func:`train` fits its booster on ``split`` (``dataset.split(config.split)``):
    on this machine (:func:`fit_on_split`) or on a Dask cluster (``training.distributed``).
    Everything after the booster is the same code."""

    def __call__(
        self, dataset: Dataset, split: Split, config: TrainConfig, progress: StageProgress
    ) -> Any: ...


def fit_on_split(
    dataset: Dataset, split: Split, config: TrainConfig, progress: StageProgress
) -> Any:
    """:func:`fit_lightgbm` on the train slice, early-stopped on the validation slice."""
    return fit_lightgbm(split.train, split.validation, config, progress=progress)


def train(
    dataset: Dataset,
    config: TrainConfig | None = None,
    *,
    progress: StageProgress | None = None,
    fit: BoosterFit = fit_on_split,
) -> TrainResult:
    """Fit (with ``fit``), calibrate and evaluate on ``dataset.split(config.split)``."""
    config = config or TrainConfig()
    split = split_of(dataset, config)
    check_split(split, config)
    report = progress or (lambda stage, done, total: None)
    seconds: dict[str, float] = {}

    started = time.perf_counter()
    booster = fit(dataset, split, config, report)
    seconds["lightgbm"] = time.perf_counter() - started

    baseline = timed_baseline(split.train, config, report, seconds)

    started = time.perf_counter()
    report("calibrate", 0, 1)
    raw_validation = _predict_raw(booster, split.validation.X)
    calibration, note = fit_calibration(
        raw_validation, split.validation.y, split.validation.w, config
    )
    report("calibrate", 1, 1)
    seconds["calibration"] = time.perf_counter() - started

    classifier = ConnectClassifier(
        booster=booster,
        calibration=calibration,
        horizon_s=dataset.spec.horizon_s,
        feature_names=tuple(dataset.feature_names),
        data=model_data(dataset, config),
    )
    raw_test = _predict_raw(booster, split.test.X)
    probabilities, metrics = timed_comparison(
        split.test, baseline, seconds, model=calibration.apply(raw_test), model_raw=raw_test
    )
    return TrainResult(
        classifier=classifier,
        baseline=baseline,
        split=split,
        metrics=metrics,
        test_probability=probabilities,
        trees=int(booster.num_trees()),
        calibration_note=note,
        seconds=seconds,
        config=config,
        gains=np.asarray(booster.feature_importance(importance_type="gain"), dtype=np.float64),
        reference=fit_reference(split.train, dataset.feature_names, config),
    )


def model_data(dataset: Dataset, config: TrainConfig) -> dict[str, Any]:
    """How the training rows were made (the dataset spec and the split), as a model keeps
    it: the promotion's holdout is rebuilt from it (``training.promote.holdout_spec``)."""
    return {**asdict(dataset.spec), "split": list(config.split)}


def timed_baseline(
    rows: Dataset, config: TrainConfig, report: StageProgress, seconds: dict[str, float]
) -> Baseline:
    """:func:`fit_baseline`, reported as the ``baseline`` stage and timed into ``seconds``."""
    started = time.perf_counter()
    report("baseline", 0, 1)
    baseline = fit_baseline(rows, config)
    report("baseline", 1, 1)
    seconds["baseline"] = time.perf_counter() - started
    return baseline


def side_by_side(test: Dataset, baseline: Baseline, **models: Floats) -> dict[str, Floats]:
    """The test slice's probabilities of ``models`` (by name; ``model`` first), of the
    baseline and of the heuristic, all for the dataset's horizon."""
    return {
        **models,
        "baseline": baseline.predict_proba(test.X),
        "heuristic": HeuristicScorer(horizon_s=test.spec.horizon_s).score(test.X).probability,
    }


def timed_comparison(
    test: Dataset, baseline: Baseline, seconds: dict[str, float], **models: Floats
) -> tuple[dict[str, Floats], dict[str, ModelMetrics]]:
    """The test slice's :func:`side_by_side` probabilities and their metrics, timed into
    ``seconds`` as the ``evaluation`` stage."""
    started = time.perf_counter()
    probabilities = side_by_side(test, baseline, **models)
    metrics = evaluate_each(test, probabilities)
    seconds["evaluation"] = time.perf_counter() - started
    return probabilities, metrics


def evaluate_each(test: Dataset, probabilities: Mapping[str, Floats]) -> dict[str, ModelMetrics]:
    """:func:`training.evaluate.evaluate` of each named set of probabilities on ``test``."""
    return {name: evaluate(test.y, p, test.w) for name, p in probabilities.items()}


def fit_lightgbm(
    train_rows: Dataset,
    validation: Dataset,
    config: TrainConfig,
    *,
    progress: StageProgress | None = None,
) -> Any:
    """A booster trimmed to its best iteration on the validation slice's log loss."""
    return fit_booster(
        (train_rows.X, train_rows.y, train_rows.w),
        (validation.X, validation.y, validation.w),
        list(train_rows.feature_names),
        config,
        progress=progress,
    )


Rows = tuple[Floats, Bools, Floats]
"""Features, labels and weights of the rows a booster is fitted or validated on."""


def fit_booster(
    train_rows: Rows,
    validation: Rows,
    names: list[str],
    config: TrainConfig,
    *,
    progress: StageProgress | None = None,
    stage: str = "lightgbm",
) -> Any:
    """:func:`fit_lightgbm` on bare arrays; ``progress(stage, trees, max)``."""
    import lightgbm as lgb

    X, y, w = train_rows
    train_set = lgb.Dataset(
        X,
        y.astype(np.float64),
        weight=w,
        feature_name=names,
        params={"verbosity": -1, "seed": config.seed},
        free_raw_data=True,
    )
    Xv, yv, wv = validation
    valid_set = lgb.Dataset(Xv, yv.astype(np.float64), weight=wv, reference=train_set)
    callbacks: list[Any] = [lgb.early_stopping(config.early_stopping_rounds, verbose=False)]
    if progress is not None:

        def report(env: Any) -> None:
            progress(stage, env.iteration + 1, env.end_iteration)

        callbacks.append(report)
    booster = lgb.train(
        config.lightgbm_params(),
        train_set,
        num_boost_round=config.max_trees,
        valid_sets=[valid_set],
        valid_names=["validation"],
        callbacks=callbacks,
    )
    best = booster.best_iteration or booster.current_iteration()
    if progress is not None:  # early stopping ends the bar where boosting stopped
        done = booster.current_iteration()
        progress(stage, done, done)
    return lgb.Booster(model_str=booster.model_to_string(num_iteration=best))


def fit_reference(
    rows: Dataset, feature_names: tuple[str, ...], config: TrainConfig
) -> FeatureReference:
    """The features' training reference over the rows of the users the service scores
    (all rows when there are none), weighted as the rows are."""
    recent = seen_within(rows.X, config.reference_recent_s)
    if not recent.any():
        recent = np.ones(len(rows.X), dtype=bool)
    return FeatureReference.fit(
        rows.X[recent], feature_names, config.reference_bins, weights=rows.w[recent]
    )


def fit_baseline(train_rows: Dataset, config: TrainConfig) -> Baseline:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pipeline = make_pipeline(
        StandardScaler(), LogisticRegression(max_iter=config.baseline_max_iter)
    )
    pipeline.fit(
        train_rows.X,
        train_rows.y,
        standardscaler__sample_weight=train_rows.w,
        logisticregression__sample_weight=train_rows.w,
    )
    return Baseline(pipeline)


def fit_calibration(
    raw: Floats, y: Bools, w: Floats, config: TrainConfig
) -> tuple[Calibration, str | None]:
    """The calibration map (and a note when isotonic was asked for but not used)."""
    positives = int(y.sum())
    if config.calibration == "isotonic":
        if positives >= config.min_isotonic_positives:
            return fit_isotonic(raw, y, w), None
        note = (
            f"isotonic calibration needs {config.min_isotonic_positives} validation "
            f"positives, found {positives}: sigmoid used"
        )
        return fit_sigmoid(raw, y, w), note
    return fit_sigmoid(raw, y, w), None


def fit_sigmoid(raw: Floats, y: Bools, w: Floats) -> SigmoidCalibration:
    """Platt scaling: a weighted, (nearly) unregularised logistic fit on logit(raw)."""
    from sklearn.linear_model import LogisticRegression

    fit = LogisticRegression(C=1e6, max_iter=1000)
    fit.fit(logit(raw)[:, None], y, sample_weight=w)
    return SigmoidCalibration(float(fit.coef_[0, 0]), float(fit.intercept_[0]))


def fit_isotonic(raw: Floats, y: Bools, w: Floats) -> IsotonicCalibration:
    from sklearn.isotonic import IsotonicRegression

    fit = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
    fit.fit(raw, y.astype(np.float64), sample_weight=w)
    return IsotonicCalibration(
        np.asarray(fit.X_thresholds_, dtype=np.float64),
        np.asarray(fit.y_thresholds_, dtype=np.float64),
    )


def _predict_raw(booster: Any, features: Floats) -> Floats:
    out: Floats = np.asarray(booster.predict(features, num_threads=1), dtype=np.float64)
    return out


def split_of(dataset: Dataset, config: TrainConfig) -> Split:
    """``dataset.split(config.split)``; three empty slices for an empty dataset (which
    :func:`check_split` refuses with its reason)."""
    return dataset.split(config.split) if len(dataset) else Split(dataset, dataset, dataset)
