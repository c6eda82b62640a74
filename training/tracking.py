"""Recording a training run in MLflow and registering its model as a new version.

One run holds:

- params: the training config (``train.*``), the dataset spec (``data.*``), the horizon and
  how it was chosen (``horizon_source``: given, boots or default; ``horizon_boots``, the
  node boots it looked at; ``horizon_boot_quantile`` and ``horizon_boot_s``, the boot-time
  quantile covered and its value), the event range (unix seconds and ISO 8601), the source,
  the number of trees kept and the calibration used;
- metrics: on the test slice, ``test_<scorer>_<metric>`` for the calibrated model
  (``model``), the raw booster (``model_raw``), the baseline and the heuristic; rows and
  positives per slice; seconds per stage;
- tags: ``data_digest`` (SHA-256 of the rows), ``source``, ``horizon_source``,
  ``model_type`` (also a param);
- inputs: the train, validation and test slices as ``mlflow.data`` datasets with their
  digests and a file source (the trace file; for the event log, a Parquet snapshot of the
  events logged as ``data/events.parquet``, since the log is trimmed over time);
- artifacts: ``features.json`` (column order), ``metrics.json`` and ``metrics.md`` (the
  comparison table), ``plots/roc.png``, ``plots/reliability.png``, ``plots/importance.png``,
  ``reference.json`` (the features' training reference, ``models.reference``);
- the model (``models.classifier``): the native LightGBM booster with signature, input
  example, explicit pip requirements, ``classifier.json`` and ``reference.json``,
  registered as a new version of the registered model, whose version tags repeat the
  model type, the horizon (and how it was chosen), digest and test metrics.

A time-to-connect model (``training.train_curve``) records the same, its figures at the
horizon as ``test_model_*``, and what ``training.curve_tracking`` adds (its grid, metrics
at each horizon, the integrated Brier score, a reliability diagram per horizon); its model
directory is ``models.curve_files``' (``curve.json`` and ``reference.json`` beside the
booster) and its version tags add ``curve_metrics``.

Everything is logged before the model is registered: a run that fails registers nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np

from models.classifier import log_model
from models.curve_files import log_curve_model
from models.defaults import DEFAULT_MODEL_NAME
from models.horizon import HorizonChoice, HorizonSource
from models.reference import REFERENCE_FILE
from training.curve_tracking import (
    CURVE_METRICS_FILE,
    curve_params,
    curve_run_metrics,
    curve_summary,
    plot_horizons,
)
from training.dataset import Dataset
from training.defaults import DEFAULT_EXPERIMENT
from training.evaluate import plot_importance, plot_reliability, plot_roc, table
from training.sources import EventSource, write_snapshot
from training.train_curve import CurveTrainResult, JobResult

EXAMPLE_ROWS: Final = 5
_URI_LOCK = threading.Lock()
"""MLflow's fluent API reads a process-wide tracking URI: one user of it at a time."""


@dataclass(frozen=True, slots=True)
class TrackingConfig:
    tracking_uri: str
    experiment: str = DEFAULT_EXPERIMENT
    model_name: str = DEFAULT_MODEL_NAME
    artifact_location: str | None = None
    """Artifact root for a new experiment (None: the tracking server's default)."""


@dataclass(frozen=True, slots=True)
class LoggedRun:
    run_id: str
    experiment_id: str
    model_name: str
    version: str
    model_uri: str
    artifact_uri: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@contextmanager
def active(tracking: TrackingConfig) -> Iterator[Any]:
    """Point MLflow's fluent API at ``tracking``, then put everything back; yields a client.

    ``mlflow.set_tracking_uri`` also writes ``MLFLOW_TRACKING_URI`` (and the registry's
    ``MLFLOW_REGISTRY_URI``) into the environment, where it would outlive this call and
    redirect the next ``Settings()`` of a long-lived process; both the module state and
    the environment variables are restored exactly.
    """
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_state
    from mlflow.tracking._tracking_service import utils as tracking_state

    names = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    with _URI_LOCK:
        saved_env = {name: os.environ.get(name) for name in names}
        saved_tracking = getattr(tracking_state, "_tracking_uri", None)
        saved_registry = getattr(registry_state, "_registry_uri", None)
        mlflow.set_tracking_uri(tracking.tracking_uri)
        mlflow.set_registry_uri(tracking.tracking_uri)
        try:
            yield mlflow.MlflowClient(tracking.tracking_uri, tracking.tracking_uri)
        finally:
            mlflow.set_tracking_uri(saved_tracking)  # type: ignore[arg-type]
            mlflow.set_registry_uri(saved_registry)  # type: ignore[arg-type]
            for name, value in saved_env.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def experiment_id(client: Any, tracking: TrackingConfig) -> str:
    """The experiment's id, creating it (with the configured artifact root) if needed."""
    found = client.get_experiment_by_name(tracking.experiment)
    if found is not None:
        return str(found.experiment_id)
    return str(
        client.create_experiment(tracking.experiment, artifact_location=tracking.artifact_location)
    )


def log_training(
    result: JobResult,
    dataset: Dataset,
    source: EventSource,
    tracking: TrackingConfig,
    *,
    run_name: str | None = None,
    tags: Mapping[str, str] | None = None,
    horizon: HorizonChoice | None = None,
) -> LoggedRun:
    """Record ``result`` as a run and register its model (see the module docstring);
    ``horizon`` says how the dataset's horizon was chosen (None: given)."""
    import mlflow

    first, last = dataset.event_range
    digest = dataset.digest()
    chosen = horizon or HorizonChoice(dataset.spec.horizon_s, HorizonSource.GIVEN)
    with (
        active(tracking) as client,
        tempfile.TemporaryDirectory(prefix="run-") as folder,
        # MLflow writes "View run ... at" lines to stdout for a server: stdout is for data.
        contextlib.redirect_stdout(sys.stderr),
    ):
        work = Path(folder)
        exp = experiment_id(client, tracking)
        name = run_name or f"train {_iso(first)} .. {_iso(last)}"
        with mlflow.start_run(experiment_id=exp, run_name=name) as run:
            mlflow.set_tags(
                {
                    "data_digest": digest,
                    "source": source.kind,
                    "horizon_source": chosen.source.value,
                    "model_type": result.model_type.value,
                    **(tags or {}),
                }
            )
            mlflow.log_params(_params(result, dataset, source, chosen))
            mlflow.log_metrics(_metrics(result))
            mlflow.log_dict({"features": list(dataset.feature_names)}, "features.json")
            mlflow.log_dict({k: m.as_dict() for k, m in result.metrics.items()}, "metrics.json")
            mlflow.log_text(table(result.metrics) + "\n", "metrics.md")
            if result.reference is not None:
                mlflow.log_dict(result.reference.to_dict(), REFERENCE_FILE)
            if isinstance(result, CurveTrainResult):
                mlflow.log_dict(result.curve.metrics, CURVE_METRICS_FILE)
            _log_plots(result, work / "plots")
            _log_inputs(result, source, run.info.artifact_uri, work, tracking.tracking_uri)
            info = _log_model(result, tracking.model_name)
            version = str(info.registered_model_version)
            version_tags = _version_tags(result, dataset, source, digest, run.info.run_id, chosen)
            for key, value in version_tags:
                client.set_model_version_tag(tracking.model_name, version, key, value)
            return LoggedRun(
                run_id=run.info.run_id,
                experiment_id=exp,
                model_name=tracking.model_name,
                version=version,
                model_uri=f"models:/{tracking.model_name}/{version}",
                artifact_uri=run.info.artifact_uri,
            )


def _log_model(result: JobResult, model_name: str) -> Any:
    """Log the model of either type to the active run and register it as a new version."""
    if isinstance(result, CurveTrainResult):
        return log_curve_model(
            result.model,
            _input_example(result),
            registered_model_name=model_name,
            reference=result.reference,
        )
    return log_model(
        result.classifier,
        _input_example(result),
        registered_model_name=model_name,
        reference=result.reference,
    )


def _params(
    result: JobResult, dataset: Dataset, source: EventSource, horizon: HorizonChoice
) -> dict[str, Any]:
    first, last = dataset.event_range
    params: dict[str, Any] = {f"train.{k}": v for k, v in result.config.as_params().items()}
    params |= {f"data.{k}": v for k, v in asdict(dataset.spec).items()}
    params |= {
        "horizon_s": dataset.spec.horizon_s,
        "horizon_source": horizon.source.value,
        "horizon_boots": horizon.boots,
        "horizon_boot_quantile": horizon.boot_quantile,
        "horizon_boot_s": horizon.boot_s,
        "event_range_start": first,
        "event_range_end": last,
        "event_range": f"{_iso(first)} .. {_iso(last)}",
        "source.kind": source.kind,
        "source.location": source.location,
        "source.since": source.since,
        "source.until": source.until,
        "features": len(dataset.feature_names),
        "trees": result.trees,
        "calibration": result.calibration_method,
        "model_type": result.model_type.value,
    }
    if isinstance(result, CurveTrainResult):
        params |= curve_params(result.model)
    if result.calibration_note:
        params["calibration_note"] = result.calibration_note[:500]
    return params


def _metrics(result: JobResult) -> dict[str, float]:
    out: dict[str, float] = {}
    for scorer, m in result.metrics.items():
        for key, value in m.scores().items():
            if np.isfinite(value):
                out[f"test_{scorer}_{key}"] = value
    for name in ("train", "validation", "test"):
        part: Dataset = getattr(result.split, name)
        out[f"{name}_rows"] = float(len(part))
        out[f"{name}_positives"] = float(part.positives)
    out |= {f"seconds_{stage}": s for stage, s in result.seconds.items()}
    if isinstance(result, CurveTrainResult):
        out |= curve_run_metrics(result.curve.metrics)
    return out


def _log_plots(result: JobResult, folder: Path) -> None:
    import mlflow

    folder.mkdir()
    test = result.split.test
    curves = {k: result.test_probability[k] for k in ("model", "baseline", "heuristic")}
    plot_roc(folder / "roc.png", test.y, test.w, curves)
    plot_reliability(folder / "reliability.png", test.y, test.w, curves)
    plot_importance(folder / "importance.png", result.gain_names, result.gains)
    if isinstance(result, CurveTrainResult):
        plot_horizons(folder, result)
    mlflow.log_artifacts(str(folder), "plots")


def _log_inputs(
    result: JobResult,
    source: EventSource,
    artifact_uri: str,
    work: Path,
    tracking_uri: str,
) -> None:
    import mlflow
    from mlflow.data.numpy_dataset import from_numpy

    if source.path is not None:
        location = str(source.path.resolve())
    else:
        snapshot = write_snapshot(source.local_table(), work / "events.parquet")
        mlflow.log_artifact(str(snapshot), "data")
        location = f"{artifact_uri.rstrip('/')}/data/events.parquet"
    data_source = _dataset_source(location, tracking_uri)
    for context in ("train", "validation", "test"):
        part: Dataset = getattr(result.split, context)
        data = from_numpy(
            part.X,
            source=data_source,
            targets=part.y.astype(np.int8),
            name=f"{context} ({source.kind})",
            digest=part.digest()[:32],
        )
        mlflow.log_input(data, context=context)


def _dataset_source(location: str, tracking_uri: str) -> Any:
    """The ``mlflow.data`` source of a file: local, in an artifact store, or on a server.

    A server's proxied artifacts (``mlflow-artifacts:``) have no dataset-source resolver;
    they are named by their download URL on that server instead.
    """
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.http_dataset_source import HTTPDatasetSource

    if location.startswith("mlflow-artifacts:"):
        path = location.removeprefix("mlflow-artifacts:").lstrip("/")
        if "://" not in location and tracking_uri.startswith(("http://", "https://")):
            base = tracking_uri.rstrip("/")
            http_source: Any = HTTPDatasetSource
            return http_source(f"{base}/api/2.0/mlflow-artifacts/artifacts/{path}")
    with warnings.catch_warnings():  # "can be interpreted in multiple ways": it is a file
        warnings.simplefilter("ignore", UserWarning)
        return resolve_dataset_source(location)


def _input_example(result: JobResult) -> Any:
    """A few test rows, positives first: stored with the model and used to warm it."""
    test = result.split.test
    positives = np.flatnonzero(test.y)[: EXAMPLE_ROWS // 2 + 1]
    negatives = np.flatnonzero(~test.y)[: EXAMPLE_ROWS - len(positives)]
    return test.X[np.concatenate([positives, negatives])]


def _version_tags(
    result: JobResult,
    dataset: Dataset,
    source: EventSource,
    digest: str,
    run_id: str,
    horizon: HorizonChoice,
) -> list[tuple[str, str]]:
    first, last = dataset.event_range
    model = result.metrics["model"]
    curve = (
        [("curve_metrics", json.dumps(curve_summary(result.curve.metrics)))]
        if isinstance(result, CurveTrainResult)
        else []
    )
    return [
        ("model_type", result.model_type.value),
        ("horizon_s", str(dataset.spec.horizon_s)),
        ("horizon_source", horizon.source.value),
        *(
            (f"horizon_{key}", str(value))
            for key, value in horizon.as_dict().items()
            if key in ("boots", "boot_quantile", "boot_s") and value is not None
        ),
        ("data_digest", digest),
        ("event_range", f"{_iso(first)} .. {_iso(last)}"),
        ("source", f"{source.kind}:{source.location}"),
        ("run_id", run_id),
        ("test_metrics", json.dumps({k: round(v, 6) for k, v in model.scores().items()})),
        *curve,
    ]


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
