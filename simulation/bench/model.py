"""The bench's model: the calibrated LightGBM of the training package, trained on a history
that is not the scored one (:func:`simulation.bench.history.check_separate`), for the label
horizon of :func:`bench_horizon`."""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from features.boot_times import DEFAULT_BOOT_CAPACITY
from models.horizon import HorizonChoice, choose_horizon
from models.model_types import DEFAULT_MODEL_TYPE, ModelType
from models.scoring import Scorer
from service.config import ServiceConfig
from simulation.bench.errors import BenchError
from simulation.bench.history import History
from simulation.bench.progress import Progress
from simulation.nodes.boot import BootSchedule

TRAIN_LABEL: Final = "train model"
"""The progress label of the training, in steps: 0, 1 (the dataset), 3 (the model)."""


def bench_horizon(boot: BootSchedule, seed: int, config: ServiceConfig) -> HorizonChoice:
    """The label horizon of the bench's model and heuristic: the config's fixed lead time
    when it has one (given), else the service's lead-time rule
    (:func:`models.horizon.horizon_from_boots`) over ``DEFAULT_BOOT_CAPACITY`` boots drawn
    from the distribution in force at the start of the scored window, by a generator of
    their own seeded by the bench's seed (not the fleet's: these are not the run's boots)."""
    rng = random.Random(f"bench boot draws {seed}")
    at_start = boot.at(boot.start)
    draws = [at_start.sample(rng) for _ in range(DEFAULT_BOOT_CAPACITY)]
    return choose_horizon(config.lead_time_s, draws)


@dataclass(frozen=True)
class TrainedModel:
    scorer: Scorer
    info: dict[str, Any]
    """What the JSON says of the model (no wall time: the JSON is deterministic)."""
    history: History = field(repr=False)
    seconds: float = field(default=0.0, compare=False)
    """Wall time of building the dataset and training."""


def train_model(
    history: History,
    *,
    horizon: HorizonChoice,
    progress: Progress | None = None,
    model_type: ModelType = DEFAULT_MODEL_TYPE,
) -> TrainedModel:
    """Build the point-in-time dataset of ``history`` for ``horizon`` and train the calibrated
    LightGBM on it (the classifier, or the hazard time-to-connect model); the scorer is the
    one the service serves (``models.model_scorer.ModelScorer``)."""
    from features.table import EventTable
    from models.connect_curve import CurveKind
    from models.model_scorer import ModelScorer
    from models.registry import LoadedModel
    from training.curve import fit_curve
    from training.dataset import DatasetSpec, build_dataset
    from training.train import BadTrainingData, TrainConfig, train

    report = progress or (lambda label, done, total: None)
    report(TRAIN_LABEL, 0.0, 3.0)
    started = time.perf_counter()
    dataset = build_dataset(
        EventTable.from_events(history.events), DatasetSpec(horizon_s=horizon.horizon_s)
    )
    report(TRAIN_LABEL, 1.0, 3.0)
    served: Any
    described: dict[str, Any]
    try:
        if model_type is ModelType.CURVE:
            fitted = fit_curve(dataset, CurveKind.HAZARD, config=TrainConfig())
            served = fitted.model
            described = {
                "trees": int(fitted.model.boosters[0].num_trees()),
                "test_metrics": fitted.metrics["per_horizon"][-1],
                "curve_metrics": {
                    key: fitted.metrics[key] for key in ("integrated_brier", "mean_log_loss")
                },
            }
        else:
            result = train(dataset, TrainConfig())
            served = result.classifier
            metrics = asdict(result.metrics["model"])
            described = {
                "trees": result.trees,
                "test_metrics": {k: v for k, v in metrics.items() if isinstance(v, float | int)},
            }
    except BadTrainingData as e:
        raise BenchError(f"cannot train the model on {history.source}: {e}") from e
    report(TRAIN_LABEL, 3.0, 3.0)
    digest = dataset.digest()
    loaded = LoadedModel(
        name="bench",
        version=(
            f"bench-{digest[:12]}"
            if model_type is ModelType.CLASSIFIER
            else f"bench-{model_type.value}-{digest[:12]}"
        ),
        classifier=served,
        input_example=dataset.X[:8],
    )
    info = {
        "type": model_type.value,
        "trained_on": history.describe(),
        "rows": len(dataset),
        "positives": dataset.positives,
        "horizon_s": dataset.spec.horizon_s,
        "horizon": horizon.as_dict(),
        "version": loaded.version,
        **described,
    }
    return TrainedModel(ModelScorer(loaded), info, history, time.perf_counter() - started)
