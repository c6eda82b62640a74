"""The trained classifier as it is served: a LightGBM booster and a calibration map.

The booster gives a raw probability; the calibration maps it to the probability the scaler
consumes, fitted on the validation slice:

- ``sigmoid`` (Platt): ``p = 1 / (1 + exp(-(a * logit(raw) + b)))``, two floats;
- ``isotonic``: the piecewise-linear map through thresholds ``(x, y)`` (``np.interp``),
  kept within ``[ISOTONIC_FLOOR, 1 - ISOTONIC_FLOOR]`` so that no row gets a certain 0 or 1.

In MLflow the booster is a native ``lightgbm`` flavor model (``mlflow.lightgbm.load_model``
gives back a ``Booster`` that predicts on numpy), and everything else it needs travels in
the same model directory as ``extra_files/classifier.json``: the calibration, the horizon,
the feature names in column order and the dataset spec it was trained on; and, for versions
trained since it exists, ``extra_files/reference.json``: the training reference of the
features (``models.reference``) that the service measures live drift against. Loading reads
them from one local directory (a version without a reference loads with none); nothing is
pickled.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Final, TypeAlias

import numpy as np
import numpy.typing as npt

from features.definitions import FEATURE_NAMES
from models.reference import REFERENCE_FILE, FeatureReference

if TYPE_CHECKING:
    from mlflow.models.model import ModelInfo

Floats = npt.NDArray[np.float64]

CLASSIFIER_FILE: Final = "classifier.json"
"""Name of the calibration/metadata file beside the booster (under ``extra_files/``)."""
FORMAT: Final = 1
"""Version of the ``classifier.json`` layout."""
ISOTONIC_FLOOR: Final = 1e-6
_LOGIT_CLIP: Final = 1e-12


class ClassifierFormatError(ValueError):
    """A saved classifier whose files are missing, malformed or of another format."""


def logit(p: Floats) -> Floats:
    q = np.clip(p, _LOGIT_CLIP, 1.0 - _LOGIT_CLIP)
    out: Floats = np.log(q / (1.0 - q))
    return out


@dataclass(frozen=True, slots=True)
class SigmoidCalibration:
    """Platt scaling on the logit of the raw probability."""

    a: float
    b: float
    method: ClassVar[str] = "sigmoid"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.a) and math.isfinite(self.b)):
            raise ValueError(f"sigmoid calibration needs finite a, b, not {self.a}, {self.b}")

    def apply(self, raw: Floats) -> Floats:
        z = self.a * logit(raw) + self.b
        out: Floats = 1.0 / (1.0 + np.exp(-z))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "a": self.a, "b": self.b}


@dataclass(frozen=True, slots=True)
class IsotonicCalibration:
    """A non-decreasing piecewise-linear map through ``(x[i], y[i])``, flat beyond the ends."""

    x: Floats
    y: Floats
    method: ClassVar[str] = "isotonic"

    def __post_init__(self) -> None:
        if self.x.ndim != 1 or self.x.shape != self.y.shape or len(self.x) < 1:
            raise ValueError("isotonic calibration needs two equal-length 1-D threshold arrays")
        if not (np.all(np.isfinite(self.x)) and np.all(np.isfinite(self.y))):
            raise ValueError("isotonic thresholds must be finite")
        if np.any(np.diff(self.x) < 0) or np.any(np.diff(self.y) < 0):
            raise ValueError("isotonic thresholds must be non-decreasing")

    def apply(self, raw: Floats) -> Floats:
        out: Floats = np.clip(np.interp(raw, self.x, self.y), ISOTONIC_FLOOR, 1 - ISOTONIC_FLOOR)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "x": self.x.tolist(), "y": self.y.tolist()}


Calibration: TypeAlias = SigmoidCalibration | IsotonicCalibration


def calibration_from_dict(data: Mapping[str, Any]) -> Calibration:
    method = data.get("method")
    try:
        if method == SigmoidCalibration.method:
            return SigmoidCalibration(float(data["a"]), float(data["b"]))
        if method == IsotonicCalibration.method:
            return IsotonicCalibration(
                np.asarray(data["x"], dtype=np.float64), np.asarray(data["y"], dtype=np.float64)
            )
    except (KeyError, TypeError, ValueError) as e:
        raise ClassifierFormatError(f"bad {method} calibration: {e}") from e
    raise ClassifierFormatError(f"unknown calibration method {method!r}")


def feature_matrix(features: Floats, feature_names: Sequence[str]) -> Floats:
    """``features`` as a float64 ``(rows, len(feature_names))`` matrix; :class:`ValueError`
    for any other shape."""
    matrix: Floats = np.asarray(features, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[1] != len(feature_names):
        raise ValueError(
            f"expected a (rows, {len(feature_names)}) feature matrix, got shape {matrix.shape}"
        )
    return matrix


@dataclass(frozen=True)
class ConnectClassifier:
    """Probability that a user connects within ``horizon_s``, from the feature matrix."""

    booster: Any
    """A ``lightgbm.Booster`` trimmed to the trees it keeps."""
    calibration: Calibration
    horizon_s: float
    feature_names: tuple[str, ...] = FEATURE_NAMES
    data: Mapping[str, Any] = field(default_factory=dict)
    """How the training rows were made (the dataset spec, the split): for rebuilding holdouts."""

    def raw_probability(self, features: Floats) -> Floats:
        """The booster's uncalibrated probability per row."""
        matrix = feature_matrix(features, self.feature_names)
        if not len(matrix):
            return np.empty(0, dtype=np.float64)
        # One thread: scoring batches are small, and OpenMP threads that spin while another
        # process holds a core turn milliseconds into seconds.
        out: Floats = np.asarray(self.booster.predict(matrix, num_threads=1), dtype=np.float64)
        return out

    def predict_proba(self, features: Floats) -> Floats:
        """Calibrated probabilities, one per row of ``features`` (columns ``feature_names``)."""
        return self.calibration.apply(self.raw_probability(features))

    def describe(self) -> dict[str, Any]:
        """The content of ``classifier.json``: with the SHA-256 of the booster's model file
        (LightGBM writes ``model_to_string()``), checked when the model is loaded."""
        booster_text: str = self.booster.model_to_string()
        return {
            "format": FORMAT,
            "horizon_s": self.horizon_s,
            "feature_names": list(self.feature_names),
            "calibration": self.calibration.to_dict(),
            "data": dict(self.data),
            "booster_sha256": hashlib.sha256(booster_text.encode()).hexdigest(),
        }


def pip_requirements() -> list[str]:
    """What serving the model needs, pinned to this environment (no inference: fast)."""
    import lightgbm
    import mlflow

    pandas = importlib.import_module("pandas")  # untyped: only its version is read
    return [
        f"mlflow=={mlflow.__version__}",
        f"lightgbm=={lightgbm.__version__}",
        f"numpy=={np.__version__}",
        f"pandas=={pandas.__version__}",
    ]


def signature(feature_names: Sequence[str]) -> Any:
    """Named float64 columns in, the booster's probability per row out."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    return ModelSignature(
        inputs=Schema([ColSpec("double", name) for name in feature_names]),
        outputs=Schema([TensorSpec(np.dtype(np.float64), (-1,))]),
    )


def input_frame(input_example: Floats, columns: Sequence[str]) -> Any:
    """The stored input example: a non-empty ``(rows, len(columns))`` matrix as a frame."""
    pd: Any = importlib.import_module("pandas")
    example = np.asarray(input_example, dtype=np.float64)
    if example.ndim != 2 or example.shape[1] != len(columns) or not len(example):
        raise ValueError("the input example must be a non-empty feature matrix")
    return pd.DataFrame(example, columns=list(columns))


def read_input_example(model: Any, path: Path, columns: Sequence[str]) -> Floats:
    """The stored input example's ``columns`` of an MLflow model directory;
    :class:`ClassifierFormatError` when it has none."""
    example: Any = model.load_input_example(str(path))
    if example is None:
        raise ClassifierFormatError("the model has no stored input example")
    matrix: Floats = np.asarray(example[list(columns)], dtype=np.float64)
    return matrix


def log_model(
    classifier: ConnectClassifier,
    input_example: Floats,
    *,
    name: str = "model",
    registered_model_name: str | None = None,
    reference: FeatureReference | None = None,
) -> ModelInfo:
    """Log to the active MLflow run (and register a version when a name is given), with the
    features' training ``reference`` when given."""
    import mlflow.lightgbm

    with _extra_files(classifier, reference) as extra:
        info: ModelInfo = mlflow.lightgbm.log_model(
            classifier.booster,
            name=name,
            registered_model_name=registered_model_name,
            **_model_options(classifier, input_example, extra),
        )
    return info


def save_model(
    classifier: ConnectClassifier,
    path: Path,
    input_example: Floats,
    reference: FeatureReference | None = None,
) -> None:
    """Write the directory :func:`log_model` logs, to a local ``path`` (must not exist)."""
    import mlflow.lightgbm

    with _extra_files(classifier, reference) as extra:
        mlflow.lightgbm.save_model(
            classifier.booster, str(path), **_model_options(classifier, input_example, extra)
        )


def _extra_files(
    classifier: ConnectClassifier, reference: FeatureReference | None
) -> AbstractContextManager[list[Path]]:
    return description_files(
        CLASSIFIER_FILE, classifier.describe(), classifier.feature_names, reference
    )


@contextmanager
def description_files(
    name: str,
    description: Mapping[str, Any],
    feature_names: Sequence[str],
    reference: FeatureReference | None,
) -> Iterator[list[Path]]:
    """The extra files of a model directory, written to a temporary folder for MLflow to
    copy: the description ``name`` (``classifier.json``, ``curve.json``) and, when given,
    the features' training ``reference`` as ``reference.json`` (it must describe
    ``feature_names``, the model's)."""
    with tempfile.TemporaryDirectory(prefix="model-") as folder:
        path = Path(folder) / name
        path.write_text(json.dumps(description, indent=1))
        files = [path]
        if reference is not None:
            if reference.feature_names != tuple(feature_names):
                raise ValueError("the reference's features are not the model's")
            files.append(Path(folder) / REFERENCE_FILE)
            files[-1].write_text(json.dumps(reference.to_dict()))
        yield files


def _model_options(
    classifier: ConnectClassifier, input_example: Floats, extra: list[Path]
) -> dict[str, Any]:
    return {
        "signature": signature(classifier.feature_names),
        "input_example": input_frame(input_example, classifier.feature_names),
        "pip_requirements": pip_requirements(),
        "extra_files": [str(path) for path in extra],
        "metadata": {"horizon_s": classifier.horizon_s, "classifier_format": FORMAT},
    }


@dataclass(frozen=True)
class SavedModel:
    """What a model directory holds: the classifier, its stored input example and the
    training reference of its features (None: saved before references were)."""

    classifier: ConnectClassifier
    input_example: Floats
    reference: FeatureReference | None = None


def load_model(path: Path) -> SavedModel:
    """Load a model directory written by :func:`log_model` or :func:`save_model`.

    Raises :class:`ClassifierFormatError` when ``classifier.json`` or the input example is
    missing or malformed, or ``reference.json`` is there but malformed; errors of MLflow or
    LightGBM reading the booster propagate.
    """
    from mlflow.models import Model

    described = read_description(path / "extra_files" / CLASSIFIER_FILE)
    model = Model.load(str(path))
    booster = load_booster(path, model.flavors.get("lightgbm"), described.get("booster_sha256"))
    try:
        calibration = calibration_from_dict(described["calibration"])
        classifier = ConnectClassifier(
            booster=booster,
            calibration=calibration,
            horizon_s=float(described["horizon_s"]),
            feature_names=tuple(str(n) for n in described["feature_names"]),
            data=dict(described.get("data", {})),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise ClassifierFormatError(f"{CLASSIFIER_FILE}: {e}") from e
    if tuple(booster.feature_name()) != classifier.feature_names:
        raise ClassifierFormatError(
            f"the booster's features {booster.feature_name()} differ from "
            f"{CLASSIFIER_FILE}'s {list(classifier.feature_names)}"
        )
    matrix = read_input_example(model, path, classifier.feature_names)
    return SavedModel(classifier, matrix, read_reference(path, classifier.feature_names))


def read_reference(path: Path, feature_names: Sequence[str]) -> FeatureReference | None:
    """The training reference of the model directory ``path`` (``extra_files/reference.json``);
    None when it has none (saved before references were). :class:`ClassifierFormatError`
    when the file is unreadable, malformed or describes features other than
    ``feature_names``, the model's."""
    try:
        text = (path / "extra_files" / REFERENCE_FILE).read_text()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ClassifierFormatError(f"unreadable {REFERENCE_FILE}: {e}") from e
    try:
        reference = FeatureReference.from_dict(json.loads(text))
    except ValueError as e:  # JSON errors included
        raise ClassifierFormatError(f"{REFERENCE_FILE}: {e}") from e
    if reference.feature_names != tuple(feature_names):
        raise ClassifierFormatError(f"{REFERENCE_FILE} describes other features")
    return reference


def load_booster(path: Path, flavor: Mapping[str, Any] | None, sha256: object) -> Any:
    """The booster of a model directory, checked before LightGBM parses it.

    LightGBM does not survive every damaged model file: a truncated or overwritten one can
    abort or crash the whole process (``terminate called``, a segmentation fault) instead
    of raising, or load as another model. So the file is checked first: against the
    SHA-256 that ``classifier.json`` records (models logged since it does), and for its
    structure (every tree the header lists, of the size it lists, then ``end of trees``).
    The trees are then parsed in sequence (without the header's sizes LightGBM does not
    parse in parallel, where its errors abort), so what damage is left raises.
    """
    import lightgbm as lgb

    if flavor is None or "data" not in flavor:
        raise ClassifierFormatError("the model has no lightgbm flavor")
    model_class = flavor.get("model_class", "lightgbm.basic.Booster")
    if model_class != "lightgbm.basic.Booster":
        raise ClassifierFormatError(f"the model holds a {model_class}, not a Booster")
    try:
        raw = (path / str(flavor["data"])).read_bytes()
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ClassifierFormatError(f"unreadable booster file: {e}") from e
    if isinstance(sha256, str) and hashlib.sha256(raw).hexdigest() != sha256:
        raise ClassifierFormatError("the booster file is damaged: its SHA-256 differs")
    lines = check_booster_text(text)
    return lgb.Booster(model_str="\n".join(lines))


def check_booster_text(text: str) -> list[str]:
    """The lines of a LightGBM model file without its ``tree_sizes`` header line;
    :class:`ClassifierFormatError` unless its trees are all there, at the sizes listed."""
    lines = text.split("\n")
    sizes_line = next((line for line in lines if line.startswith("tree_sizes=")), None)
    end = text.find("\nend of trees\n")
    if end < 0:
        raise ClassifierFormatError("the booster file is damaged: no end of trees")
    if sizes_line is not None:
        try:
            sizes = [int(size) for size in sizes_line.removeprefix("tree_sizes=").split()]
        except ValueError as e:
            raise ClassifierFormatError(f"the booster file is damaged: {e}") from e
        position = text.find("\nTree=0\n") + 1
        for index, size in enumerate(sizes):
            if position <= 0 or not text.startswith(f"Tree={index}\n", position):
                raise ClassifierFormatError(f"the booster file is damaged at tree {index}")
            position += size
        if not text.startswith("end of trees\n", position):
            raise ClassifierFormatError("the booster file is damaged: its trees do not add up")
    return [line for line in lines if not line.startswith("tree_sizes=")]


def read_description(path: Path, expected_format: int = FORMAT) -> dict[str, Any]:
    """The JSON description beside a booster (``classifier.json``, ``curve.json``), of the
    format expected; :class:`ClassifierFormatError` when missing, unreadable or other."""
    name = path.name
    try:
        described = json.loads(path.read_text())
    except FileNotFoundError as e:
        raise ClassifierFormatError(f"no {name} beside the booster") from e
    except (OSError, ValueError) as e:
        raise ClassifierFormatError(f"unreadable {name}: {e}") from e
    if not isinstance(described, dict) or described.get("format") != expected_format:
        found = described.get("format") if isinstance(described, dict) else None
        raise ClassifierFormatError(f"{name} has format {found!r}, expected {expected_format}")
    return described
