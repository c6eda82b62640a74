from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from features.definitions import seen_within
from features.events import UserConnect, UserDisconnect
from features.table import EventTable
from models.classifier import IsotonicCalibration, SigmoidCalibration
from simulation.workloads import generate
from tests.lifecycle import FAST, seed_dataset, trained
from training.dataset import DatasetSpec, build_dataset
from training.train import BadTrainingData, TrainConfig, train

T0 = 1_732_492_800.0


def test_the_model_beats_the_baseline_and_the_heuristic() -> None:
    result = trained()
    model, baseline, heuristic = (result.metrics[k] for k in ("model", "baseline", "heuristic"))
    for other in (baseline, heuristic):
        assert model.log_loss < other.log_loss
        assert model.brier < other.brier
    assert model.roc_auc > 0.95 and model.ece < 0.02
    assert result.trees <= FAST.max_trees
    assert set(result.metrics) == {"model", "model_raw", "baseline", "heuristic"}


def test_the_classifier_carries_its_horizon_and_data_spec() -> None:
    result = trained()
    data = seed_dataset()
    assert result.classifier.horizon_s == data.spec.horizon_s
    assert result.classifier.feature_names == data.feature_names
    assert result.classifier.data["every_s"] == data.spec.every_s
    assert result.classifier.data["split"] == list(FAST.split)
    assert result.classifier.booster.num_trees() == result.trees  # trimmed to the best
    test = result.split.test
    np.testing.assert_allclose(
        result.classifier.predict_proba(test.X), result.test_probability["model"]
    )


def test_training_is_deterministic() -> None:
    a = train(seed_dataset(), FAST)
    b = train(seed_dataset(), FAST)
    assert a.classifier.booster.model_to_string() == b.classifier.booster.model_to_string()
    assert a.classifier.calibration == b.classifier.calibration
    assert a.metrics == b.metrics


def test_no_class_reweighting_and_bounded_leaf_steps() -> None:
    params = TrainConfig().lightgbm_params()
    assert not {"is_unbalance", "scale_pos_weight", "pos_bagging_fraction"} & set(params)
    assert params["max_delta_step"] > 0 and params["deterministic"]


def test_isotonic_only_with_enough_positives() -> None:
    data = seed_dataset()
    few = train(data, dataclasses.replace(FAST, calibration="isotonic"))
    assert isinstance(few.classifier.calibration, SigmoidCalibration)
    assert few.calibration_note is not None and "isotonic" in few.calibration_note
    enough = train(
        data, dataclasses.replace(FAST, calibration="isotonic", min_isotonic_positives=10)
    )
    assert isinstance(enough.classifier.calibration, IsotonicCalibration)
    assert enough.calibration_note is None
    probability = enough.test_probability["model"]
    assert np.all((probability > 0) & (probability < 1))


def test_an_empty_range_is_refused() -> None:
    empty = build_dataset(EventTable.from_events([]), DatasetSpec())
    with pytest.raises(BadTrainingData, match="no training rows"):
        train(empty, FAST)


def test_a_range_without_connects_is_refused() -> None:
    browse_only = [
        e
        for e in generate("seed", hours=2, seed=1)
        if not isinstance(e, UserConnect | UserDisconnect)
    ]
    data = build_dataset(EventTable.from_events(browse_only), DatasetSpec())
    assert len(data) > 1000
    with pytest.raises(BadTrainingData, match="both classes"):
        train(data, FAST)


def test_a_tiny_range_is_refused() -> None:
    data = build_dataset(
        EventTable.from_events(generate("seed", hours=0.25, seed=1)), DatasetSpec()
    )
    assert 0 < data.positives < len(data)
    with pytest.raises(BadTrainingData, match="slice has"):
        train(data, TrainConfig(max_trees=5))


def test_a_range_of_connects_only_is_refused() -> None:
    data = seed_dataset()
    only_connects = dataclasses.replace(data, y=np.ones(len(data), dtype=np.bool_))
    with pytest.raises(BadTrainingData, match=r"every one of \d+ rows is a connect"):
        train(only_connects, FAST)


def test_the_reference_is_taken_over_the_users_the_service_scores() -> None:
    """Quiet users (no event within the service's recent cutoff) are training rows but never
    scored: the drift reference leaves them out, weighted as the rows are."""
    result = trained()
    train_rows = result.split.train
    reference = result.reference
    assert reference is not None
    assert reference.rows == int(seen_within(train_rows.X, TrainConfig().reference_recent_s).sum())
    # A shorter cutoff (half a minute) leaves out the rows of users quiet for longer.
    recent = seen_within(train_rows.X, 30.0)
    assert 0 < recent.sum() < len(train_rows)
    narrower = train(seed_dataset(), dataclasses.replace(FAST, reference_recent_s=30.0))
    assert narrower.reference is not None and narrower.reference.rows == int(recent.sum())
