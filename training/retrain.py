"""The jobs: train and register a version from a range of events; retrain and promote.

``train_and_register`` builds the dataset, trains a model of the type asked for (the
classifier, ``training.train``, or the time-to-connect curve, ``training.train_curve``),
records the run and registers the model (``training.tracking``), in the same registered
model whatever its type. ``retrain`` does that on the recent window of
events and then runs the promotion gates (``training.promote``) on the new dataset's test
slice: the most recent holdout, which the candidate never saw and which is more recent than
anything the champion was trained on, as long as retraining runs more often than the
window moves past it.

When the gates keep the champion, the new version becomes the ``challenger`` (the live
service scores it in the shadow, and ``promote --live`` can promote it on live evidence).
:func:`champion_health` reads the champion's latest live evidence, for retraining only
when it is degraded (``training.live_gates``).

The label horizon is the dataset spec's; ``horizon`` says how it was chosen
(``models.horizon``: given, from the range's node boots, or the default) and is recorded
with the run. Without one, the spec's horizon counts as given.

Bad data (an empty, tiny or single-class range) raises ``BadTrainingData`` before
anything is logged or registered.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from models.horizon import HorizonChoice, HorizonSource
from models.model_types import DEFAULT_MODEL_TYPE, ModelType
from models.registry import CHAMPION, ModelRegistry
from training.dataset import Dataset, DatasetSpec, build_dataset
from training.gates import PromotionDecision, Tolerances
from training.live_gates import DEFAULT_LIVE_RULE, HealthVerdict, LiveRule
from training.live_gates import champion_health as judge_health
from training.promote import promote, set_challenger
from training.sources import EventSource
from training.tracking import LoggedRun, TrackingConfig, log_training
from training.train import TrainConfig, train
from training.train_curve import CurveTrainResult, JobResult, train_curve

if TYPE_CHECKING:
    from training.distributed import DaskTraining

JobProgress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: ``features`` (rows) or ``partitions`` (user partitions
built on Dask), ``lightgbm`` or ``hazard`` (trees), ``baseline``, ``calibrate``, ``log``
(MLflow), ``promote``."""


@dataclass(frozen=True)
class TrainedVersion:
    logged: LoggedRun
    result: JobResult
    dataset: Dataset
    source: EventSource
    seconds: float
    horizon: HorizonChoice

    def as_dict(self) -> dict[str, Any]:
        split = self.result.split
        curve = self.result.curve.metrics if isinstance(self.result, CurveTrainResult) else None
        return {
            "model_name": self.logged.model_name,
            "version": self.logged.version,
            "model_type": self.result.model_type.value,
            "run_id": self.logged.run_id,
            "model_uri": self.logged.model_uri,
            "horizon_s": self.dataset.spec.horizon_s,
            "horizon": self.horizon.as_dict(),
            "event_range": list(self.dataset.event_range),
            "data_digest": self.dataset.digest(),
            "source": self.source.describe(),
            "rows": {n: len(getattr(split, n)) for n in ("train", "validation", "test")},
            "positives": {n: getattr(split, n).positives for n in ("train", "validation", "test")},
            "trees": self.result.trees,
            "calibration": self.result.calibration_method,
            "calibration_note": self.result.calibration_note,
            "test_metrics": {k: m.scores() for k, m in self.result.metrics.items()},
            "curve_metrics": curve,
            "stage_seconds": {k: round(v, 3) for k, v in self.result.seconds.items()},
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class RetrainOutcome:
    trained: TrainedVersion
    decision: PromotionDecision
    challenger: str | None = None
    """The version made the challenger (the new one, when the gates kept the champion)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "trained": self.trained.as_dict(),
            "promotion": self.decision.as_dict(),
            "challenger": self.challenger,
        }


def train_and_register(
    source: EventSource,
    spec: DatasetSpec,
    config: TrainConfig,
    tracking: TrackingConfig,
    *,
    progress: JobProgress | None = None,
    tags: dict[str, str] | None = None,
    horizon: HorizonChoice | None = None,
    model_type: ModelType = DEFAULT_MODEL_TYPE,
    dask: DaskTraining | None = None,
) -> TrainedVersion:
    """Build the dataset of ``source``, train a model of ``model_type`` on it, record the
    run and register the version. With ``dask``, the rows are built and the booster is
    fitted on a Dask cluster (``training.distributed``; the classifier only)."""
    started = time.perf_counter()
    chosen = checked_horizon(spec, horizon)
    if dask is not None and model_type is not ModelType.CLASSIFIER:
        raise ValueError(f"Dask trains the {ModelType.CLASSIFIER} only, not a {model_type}")
    report = progress or (lambda stage, done, total: None)
    result: JobResult
    if dask is not None:
        dataset = dask.build_dataset(
            source.table,
            spec,
            rows_since=source.rows_since,
            progress=lambda done, total: report("partitions", done, total),
        )
        result = train(dataset, config, progress=report, fit=dask.fit)
    else:
        dataset = build_dataset(
            source.local_table(),
            spec,
            rows_since=source.rows_since,
            progress=lambda done, total: report("features", done, total),
        )
        if model_type is ModelType.CURVE:
            result = train_curve(dataset, config, progress=report)
        else:
            result = train(dataset, config, progress=report)
    report("log", 0, 1)
    logged = log_training(result, dataset, source, tracking, tags=tags, horizon=chosen)
    report("log", 1, 1)
    return TrainedVersion(
        logged, result, dataset, source, time.perf_counter() - started, horizon=chosen
    )


def retrain(
    source: EventSource,
    spec: DatasetSpec,
    config: TrainConfig,
    tracking: TrackingConfig,
    registry: ModelRegistry,
    *,
    tolerances: Tolerances,
    actor: str,
    dry_run: bool = False,
    progress: JobProgress | None = None,
    horizon: HorizonChoice | None = None,
    model_type: ModelType = DEFAULT_MODEL_TYPE,
    dask: DaskTraining | None = None,
) -> RetrainOutcome:
    """Train a model of ``model_type`` and register it on ``source``, then promote it if
    the gates pass against the champion, of either type (see module)."""
    trained = train_and_register(
        source,
        spec,
        config,
        tracking,
        progress=progress,
        tags={"job": "retrain"},
        horizon=horizon,
        model_type=model_type,
        dask=dask,
    )
    report = progress or (lambda stage, done, total: None)
    report("promote", 0, 1)
    candidate = registry.load(trained.logged.version)
    decision = promote(
        registry,
        candidate,
        trained.result.split.test,
        tolerances=tolerances,
        actor=actor,
        dry_run=dry_run,
        note="retrain",
    )
    challenger = None
    if decision.applied and not decision.promote and decision.champion is not None:
        challenger = trained.logged.version
        set_challenger(
            registry,
            challenger,
            actor=actor,
            note=f"retrain: the gates kept version {decision.champion} as the champion",
        )
    report("promote", 1, 1)
    return RetrainOutcome(trained, decision, challenger)


def champion_health(
    registry: ModelRegistry, now: float, rule: LiveRule = DEFAULT_LIVE_RULE
) -> HealthVerdict:
    """The champion's health on its latest live evidence (``training.live_gates``)."""
    champion = registry.alias_version(CHAMPION)
    evidence = None if champion is None else registry.live_evidence(champion)
    return judge_health(champion, evidence, now, rule)


def checked_horizon(spec: DatasetSpec, horizon: HorizonChoice | None) -> HorizonChoice:
    """``horizon``, which must be the spec's; a given one when None."""
    if horizon is None:
        return HorizonChoice(spec.horizon_s, HorizonSource.GIVEN)
    if horizon.horizon_s != spec.horizon_s:
        raise ValueError(
            f"the dataset spec's horizon is {spec.horizon_s} s, the choice's {horizon.horizon_s} s"
        )
    return horizon
