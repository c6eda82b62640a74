"""A hazard curve model saved as an MLflow model directory and loaded back."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest

from models.classifier import ClassifierFormatError
from models.connect_curve import CurveKind
from models.curve_files import CURVE_FILE, load_curve_model, log_curve_model, save_curve_model
from models.model_scorer import ModelScorer
from models.reference import REFERENCE_FILE, FeatureReference
from models.registry import CHAMPION, ModelRegistry
from tests.lifecycle import FAST, seed_dataset, trained_curve
from training.curve import CurveResult, fit_curve
from training.tracking import TrackingConfig, active, experiment_id


@functools.cache
def fitted(kind: CurveKind = CurveKind.HAZARD) -> CurveResult:
    return fit_curve(seed_dataset(), kind, config=FAST)


def saved(tmp_path: Path) -> Path:
    path = tmp_path / "curve"
    save_curve_model(fitted().model, path, seed_dataset().X[:5])
    return path


def test_a_saved_curve_scores_as_the_fitted_one(tmp_path: Path) -> None:
    loaded = load_curve_model(saved(tmp_path))
    model = fitted().model
    X = seed_dataset().split().test.X[:500]
    np.testing.assert_allclose(loaded.model.curve(X), model.curve(X))
    assert loaded.model.grid == model.grid and loaded.model.kind is CurveKind.HAZARD
    np.testing.assert_array_equal(loaded.input_example, seed_dataset().X[:5])


def test_a_curve_saved_with_its_reference_loads_it_and_one_saved_before_loads_without(
    tmp_path: Path,
) -> None:
    result = trained_curve()
    assert result.reference is not None
    assert result.reference.feature_names == result.model.feature_names
    assert result.reference.rows == len(result.split.train)
    example = result.split.test.X[:3]
    save_curve_model(result.model, tmp_path / "model", example, result.reference)
    assert load_curve_model(tmp_path / "model").reference == result.reference
    # Saved as every curve before references were stored with it: no reference.json.
    save_curve_model(result.model, tmp_path / "old", example)
    assert not (tmp_path / "old" / "extra_files" / REFERENCE_FILE).exists()
    old = load_curve_model(tmp_path / "old")
    assert old.reference is None
    np.testing.assert_allclose(old.model.curve(example), result.model.curve(example))


def test_a_malformed_or_foreign_reference_is_refused(tmp_path: Path) -> None:
    result = trained_curve()
    assert result.reference is not None
    others = FeatureReference.fit(np.zeros((4, 1)), ["other"])
    with pytest.raises(ValueError, match="features are not the model's"):
        save_curve_model(result.model, tmp_path / "x", result.split.test.X[:3], others)
    save_curve_model(result.model, tmp_path / "model", result.split.test.X[:3], result.reference)
    stored = tmp_path / "model" / "extra_files" / REFERENCE_FILE
    stored.write_text("{}")
    with pytest.raises(ClassifierFormatError, match=REFERENCE_FILE):
        load_curve_model(tmp_path / "model")
    stored.write_text(json.dumps(others.to_dict()))
    with pytest.raises(ClassifierFormatError, match="other features"):
        load_curve_model(tmp_path / "model")


def test_only_the_hazard_kind_is_saved(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="only a hazard"):
        save_curve_model(fitted(CurveKind.PER_HORIZON).model, tmp_path / "x", seed_dataset().X[:5])


def test_a_damaged_directory_is_refused_before_lightgbm_reads_it(tmp_path: Path) -> None:
    path = saved(tmp_path)
    booster_file = path / "model.lgb"
    text = booster_file.read_text()
    assert "Tree=0\n" in text
    booster_file.write_text(text.replace("Tree=0\n", "Tree=7\n", 1))
    with pytest.raises(ClassifierFormatError, match="SHA-256"):
        load_curve_model(path)


def test_a_description_of_another_format_or_kind_is_refused(tmp_path: Path) -> None:
    path = saved(tmp_path)
    description = path / "extra_files" / CURVE_FILE
    content = json.loads(description.read_text())
    description.write_text(json.dumps(content | {"format": 2}))
    with pytest.raises(ClassifierFormatError, match="format 2"):
        load_curve_model(path)
    description.write_text(json.dumps(content | {"kind": "per_horizon"}))
    with pytest.raises(ClassifierFormatError, match="hazard"):
        load_curve_model(path)
    description.write_text(json.dumps(content | {"feature_names": ["a"]}))
    with pytest.raises(ClassifierFormatError):
        load_curve_model(path)
    description.unlink()
    with pytest.raises(ClassifierFormatError, match=f"no {CURVE_FILE}"):
        load_curve_model(path)


def test_the_registry_loads_a_registered_curve_model_and_the_scorer_serves_its_curves(
    tracking: TrackingConfig, registry: ModelRegistry
) -> None:
    """Logged without a reference, as curves were before they stored one: it loads and
    serves, with no reference."""
    import mlflow

    model = fitted().model
    with (
        active(tracking) as client,
        mlflow.start_run(experiment_id=experiment_id(client, tracking)),
    ):
        info = log_curve_model(
            model, seed_dataset().X[:5], registered_model_name=tracking.model_name
        )
    registry.set_alias(CHAMPION, str(info.registered_model_version))
    loaded = registry.load_alias()
    assert loaded.curve_model is not None and loaded.horizon_s == model.grid.horizon_s
    assert loaded.reference is None
    scorer = ModelScorer.from_registry(registry)
    X = seed_dataset().split().test.X[:300]
    scores = scorer.score(X)
    assert scores.from_model.all()
    assert scores.curves is not None
    np.testing.assert_allclose(scores.curves[1], model.curve(X))
    np.testing.assert_allclose(scores.probability, model.curve(X)[:, -1])
    assert scores.reference is None
