"""A hazard time-to-connect model (``models.connect_curve``) as an MLflow model directory.

The layout is the classifier's (``models.classifier``): the one booster as a native
``lightgbm`` flavor model, whose inputs are the feature columns and the period start
(``PERIOD_FEATURE``), with a signature, an input example and pinned requirements; beside it
``extra_files/curve.json`` holds the curve's kind, its horizons, each horizon's calibration,
the feature names and the booster file's SHA-256, checked before LightGBM parses the file;
and ``extra_files/reference.json`` holds the training reference of the features
(``models.reference``), written and read as the classifier's is: the live drift monitor
measures a curve champion against it (a curve saved before it was loads with none).
Nothing is pickled. Only the hazard kind is saved: it is one booster, where the per-horizon
kind would be one per horizon, and no flavor holds several.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from models.classifier import (
    ClassifierFormatError,
    Floats,
    calibration_from_dict,
    description_files,
    feature_matrix,
    input_frame,
    load_booster,
    pip_requirements,
    read_description,
    read_input_example,
    read_reference,
    signature,
)
from models.connect_curve import (
    PERIOD_FEATURE,
    ConnectCurveModel,
    CurveGrid,
    CurveKind,
    with_period,
)
from models.reference import FeatureReference

if TYPE_CHECKING:
    from mlflow.models.model import ModelInfo

CURVE_FILE: Final = "curve.json"
FORMAT: Final = 1
"""Version of the ``curve.json`` layout."""


def describe(model: ConnectCurveModel) -> dict[str, Any]:
    """The content of ``curve.json``."""
    booster_text: str = model.boosters[0].model_to_string()
    return {
        "format": FORMAT,
        "kind": model.kind.value,
        "horizons_s": list(model.grid.horizons_s),
        "feature_names": list(model.feature_names),
        "calibrations": [c.to_dict() for c in model.calibrations],
        "data": dict(model.data),
        "booster_sha256": hashlib.sha256(booster_text.encode()).hexdigest(),
    }


def save_curve_model(
    model: ConnectCurveModel,
    path: Path,
    input_example: Floats,
    reference: FeatureReference | None = None,
) -> None:
    """Write the model directory to a local ``path`` (must not exist), with the features'
    training ``reference`` when given."""
    import mlflow.lightgbm

    with _options(model, input_example, reference) as options:
        mlflow.lightgbm.save_model(model.boosters[0], str(path), **options)


def log_curve_model(
    model: ConnectCurveModel,
    input_example: Floats,
    *,
    name: str = "model",
    registered_model_name: str | None = None,
    reference: FeatureReference | None = None,
) -> ModelInfo:
    """Log the model directory to the active MLflow run (and register a version when a name
    is given), with the features' training ``reference`` when given."""
    import mlflow.lightgbm

    with _options(model, input_example, reference) as options:
        info: ModelInfo = mlflow.lightgbm.log_model(
            model.boosters[0], name=name, registered_model_name=registered_model_name, **options
        )
    return info


@contextmanager
def _options(
    model: ConnectCurveModel, input_example: Floats, reference: FeatureReference | None
) -> Iterator[dict[str, Any]]:
    """What ``save_model`` and ``log_model`` are given, ``curve.json`` (and
    ``reference.json``) written for them."""
    if model.kind is not CurveKind.HAZARD:
        raise ValueError(f"only a {CurveKind.HAZARD} curve is saved, not a {model.kind}")
    columns = [*model.feature_names, PERIOD_FEATURE]
    example = feature_matrix(input_example, model.feature_names)
    frame = input_frame(with_period(example, 0.0), columns)
    with description_files(CURVE_FILE, describe(model), model.feature_names, reference) as files:
        yield {
            "signature": signature(columns),
            "input_example": frame,
            "pip_requirements": pip_requirements(),
            "extra_files": [str(path) for path in files],
            "metadata": {"horizon_s": model.grid.horizon_s, "curve_format": FORMAT},
        }


def is_curve_model(path: Path) -> bool:
    """Whether a model directory holds a time-to-connect model (not a classifier)."""
    return (path / "extra_files" / CURVE_FILE).is_file()


@dataclass(frozen=True)
class SavedCurveModel:
    model: ConnectCurveModel
    input_example: Floats
    """The stored example's feature columns (without the period)."""
    reference: FeatureReference | None = None
    """The features' training reference (None: saved before curves stored one)."""


def load_curve_model(path: Path) -> SavedCurveModel:
    """Load a directory written by :func:`save_curve_model`; :class:`ClassifierFormatError`
    when ``curve.json``, the booster or the input example is missing, damaged or does not
    agree with the rest, or ``reference.json`` is there but malformed."""
    from mlflow.models import Model

    described = read_description(path / "extra_files" / CURVE_FILE, FORMAT)
    mlmodel = Model.load(str(path))
    booster = load_booster(path, mlmodel.flavors.get("lightgbm"), described.get("booster_sha256"))
    try:
        kind = CurveKind(described["kind"])
        if kind is not CurveKind.HAZARD:
            raise ValueError(f"a saved curve is a {CurveKind.HAZARD} curve, not {kind}")
        names = tuple(str(n) for n in described["feature_names"])
        model = ConnectCurveModel(
            kind=kind,
            grid=CurveGrid(tuple(float(h) for h in described["horizons_s"])),
            boosters=(booster,),
            calibrations=tuple(calibration_from_dict(c) for c in described["calibrations"]),
            feature_names=names,
            data=dict(described.get("data", {})),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise ClassifierFormatError(f"{CURVE_FILE}: {e}") from e
    if list(booster.feature_name()) != [*names, PERIOD_FEATURE]:
        raise ClassifierFormatError(
            f"the booster's features {booster.feature_name()} are not {CURVE_FILE}'s "
            f"and {PERIOD_FEATURE}"
        )
    return SavedCurveModel(
        model, read_input_example(mlmodel, path, names), read_reference(path, names)
    )
