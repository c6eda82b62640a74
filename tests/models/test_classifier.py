from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest
from mlflow.models import Model

from features.definitions import FEATURE_NAMES
from models.classifier import (
    CLASSIFIER_FILE,
    ClassifierFormatError,
    IsotonicCalibration,
    SigmoidCalibration,
    calibration_from_dict,
    load_model,
    logit,
    save_model,
)
from tests.lifecycle import trained


def test_sigmoid_calibration_is_platt_on_the_logit() -> None:
    raw = np.array([1e-6, 0.01, 0.3, 0.5, 0.99])
    identity = SigmoidCalibration(1.0, 0.0)
    np.testing.assert_allclose(identity.apply(raw), raw, rtol=1e-9)
    shifted = SigmoidCalibration(2.0, -1.0).apply(raw)
    np.testing.assert_allclose(shifted, 1 / (1 + np.exp(-(2 * logit(raw) - 1))))
    assert np.all(np.diff(shifted) > 0)
    with pytest.raises(ValueError):
        SigmoidCalibration(float("nan"), 0.0)


def test_isotonic_calibration_interpolates_and_never_reaches_certainty() -> None:
    iso = IsotonicCalibration(np.array([0.1, 0.5, 0.9]), np.array([0.0, 0.4, 1.0]))
    out = iso.apply(np.array([0.0, 0.1, 0.3, 0.5, 0.7, 0.95]))
    np.testing.assert_allclose(out[2:5], [0.2, 0.4, 0.7])
    assert 0 < out[0] == out[1] < 1e-5 and 1 - 1e-5 < out[-1] < 1
    with pytest.raises(ValueError, match="non-decreasing"):
        IsotonicCalibration(np.array([0.1, 0.5]), np.array([0.5, 0.1]))


@pytest.mark.parametrize(
    "calibration",
    [
        SigmoidCalibration(1.3, -0.2),
        IsotonicCalibration(np.array([0.0, 1.0]), np.array([0.1, 0.9])),
    ],
)
def test_calibrations_round_trip_through_json(
    calibration: SigmoidCalibration | IsotonicCalibration,
) -> None:
    again = calibration_from_dict(json.loads(json.dumps(calibration.to_dict())))
    raw = np.linspace(0, 1, 11)
    np.testing.assert_array_equal(again.apply(raw), calibration.apply(raw))


@pytest.mark.parametrize(
    "data",
    [
        {"method": "platt"},
        {"method": "sigmoid", "a": 1.0},
        {"method": "isotonic", "x": [1], "y": []},
    ],
)
def test_bad_calibrations_are_format_errors(data: dict[str, object]) -> None:
    with pytest.raises(ClassifierFormatError):
        calibration_from_dict(data)


def test_saved_and_loaded_natively_it_predicts_the_same(tmp_path: Path) -> None:
    result = trained()
    test = result.split.test
    save_model(result.classifier, tmp_path / "model", test.X[:5])
    saved = load_model(tmp_path / "model")
    assert isinstance(saved.classifier.booster, lgb.Booster)  # the native flavor, not pyfunc
    assert saved.classifier.horizon_s == result.classifier.horizon_s
    assert saved.classifier.feature_names == FEATURE_NAMES
    assert saved.classifier.calibration == result.classifier.calibration
    assert saved.classifier.data == result.classifier.data
    np.testing.assert_array_equal(saved.input_example, test.X[:5])
    np.testing.assert_allclose(
        saved.classifier.predict_proba(test.X), result.test_probability["model"], rtol=1e-12
    )


def test_the_model_directory_is_self_describing(tmp_path: Path) -> None:
    result = trained()
    save_model(result.classifier, tmp_path / "model", result.split.test.X[:3])
    mlmodel = Model.load(str(tmp_path / "model"))
    assert "lightgbm" in mlmodel.flavors
    inputs = mlmodel.signature.inputs.to_dict()
    assert [c["name"] for c in inputs] == list(FEATURE_NAMES)
    assert {c["type"] for c in inputs} == {"double"}
    assert (mlmodel.metadata or {})["horizon_s"] == result.classifier.horizon_s
    requirements = (tmp_path / "model" / "requirements.txt").read_text().split()
    assert any(r.startswith("lightgbm==") for r in requirements)
    assert all("==" in r for r in requirements)  # pinned, not inferred
    described = json.loads((tmp_path / "model" / "extra_files" / CLASSIFIER_FILE).read_text())
    assert described["calibration"]["method"] == "sigmoid"


def test_a_model_without_its_classifier_file_does_not_load(tmp_path: Path) -> None:
    result = trained()
    save_model(result.classifier, tmp_path / "model", result.split.test.X[:3])
    extra = tmp_path / "model" / "extra_files" / CLASSIFIER_FILE
    described = json.loads(extra.read_text())
    extra.write_text(json.dumps(described | {"format": 99}))
    with pytest.raises(ClassifierFormatError, match="format"):
        load_model(tmp_path / "model")
    extra.unlink()
    with pytest.raises(ClassifierFormatError, match=r"no classifier\.json"):
        load_model(tmp_path / "model")


def test_other_features_than_the_booster_s_are_refused(tmp_path: Path) -> None:
    result = trained()
    renamed = dataclasses.replace(
        result.classifier, feature_names=(*FEATURE_NAMES[:-1], "something_else")
    )
    save_model(renamed, tmp_path / "model", result.split.test.X[:3])
    with pytest.raises(ClassifierFormatError, match="differ"):
        load_model(tmp_path / "model")


def test_a_matrix_of_the_wrong_width_is_refused() -> None:
    classifier = trained().classifier
    with pytest.raises(ValueError, match="feature matrix"):
        classifier.predict_proba(np.zeros((2, 5)))
    assert classifier.predict_proba(np.zeros((0, len(FEATURE_NAMES)))).shape == (0,)
