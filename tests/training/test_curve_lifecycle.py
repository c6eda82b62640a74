"""A time-to-connect model through the lifecycle, against a real MLflow store: trained and
recorded, registered in the same model as the classifier, gated and promoted against a
champion of either type, rolled back."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from pathlib import Path
from urllib.parse import urlparse

import mlflow
import numpy as np
import pytest

from models.classifier import SigmoidCalibration
from models.model_scorer import ModelScorer
from models.model_types import ModelType
from models.reference import REFERENCE_FILE, FeatureReference
from models.registry import CHAMPION, PREVIOUS, ModelRegistry
from tests.lifecycle import (
    BOTH_STORES,
    FAST,
    register,
    retrain_seed,
    seed_table,
    trace_source,
    trained,
    trained_curve,
)
from training.curve import curve_metrics
from training.dataset import DatasetSpec, build_dataset
from training.evaluate import METRIC_NAMES
from training.gates import INTEGRATED_BRIER, Tolerances, check_curve_gate
from training.promote import build_holdout, load_candidate, promote, rollback
from training.tracking import TrackingConfig, log_training
from training.train import evaluate_each
from training.train_curve import CurveTrainResult, train_curve

AT_HORIZON = {"log_loss", "brier", "roc_auc"}


@functools.cache
def early_too_low() -> CurveTrainResult:
    """The same curve with the probabilities of every horizon but the last pushed down: no
    worse at the horizon (the classifier's question), worse over the curve."""
    good = trained_curve()
    low = SigmoidCalibration(1.0, -3.0)
    calibrations = (*(low,) * (len(good.model.grid) - 1), good.model.calibrations[-1])
    model = dataclasses.replace(good.model, calibrations=calibrations)
    test = good.split.test
    curve = model.curve(test.X)
    fitted = dataclasses.replace(
        good.curve, model=model, test_curve=curve, metrics=curve_metrics(curve, test, model.grid)
    )
    probabilities = {**good.test_probability, "model": curve[:, -1]}
    return dataclasses.replace(
        good,
        curve=fitted,
        test_probability=probabilities,
        metrics=evaluate_each(test, probabilities),
    )


def test_the_integrated_brier_gate_allows_the_brier_slack_and_no_more() -> None:
    def measured(ibs: float, horizons: tuple[float, ...] = (20.0, 40.0)) -> dict[str, object]:
        return {"horizons_s": list(horizons), INTEGRATED_BRIER: ibs}

    tolerances = Tolerances(brier=0.01)
    assert check_curve_gate(measured(0.0202), measured(0.02), tolerances).passed
    assert not check_curve_gate(measured(0.02021), measured(0.02), tolerances).passed
    assert not check_curve_gate(measured(math.nan), measured(0.02), tolerances).passed
    with pytest.raises(ValueError, match="other horizons"):
        check_curve_gate(measured(0.01, (10.0, 40.0)), measured(0.02), tolerances)


def test_a_curve_run_records_its_metrics_at_each_horizon_and_registers_a_curve(
    tracking: TrackingConfig, registry: ModelRegistry
) -> None:
    result = trained_curve()
    logged = register(tracking, result)
    run = mlflow.MlflowClient(tracking.tracking_uri).get_run(logged.run_id)
    grid = result.model.grid
    assert run.data.tags["model_type"] == run.data.params["model_type"] == "curve"
    assert run.data.params["curve.kind"] == "hazard"
    assert run.data.params["curve.horizons_s"] == "5,10,15,20,25,30,35,40"
    assert run.data.params["trees"] == str(result.trees)

    metrics = run.data.metrics
    for k, horizon in enumerate(grid.horizons_s):
        at = result.curve.metrics["per_horizon"][k]
        for name in METRIC_NAMES:
            assert metrics[f"test_model_at_{horizon:g}s_{name}"] == pytest.approx(at[name])
    assert metrics["test_model_integrated_brier"] == pytest.approx(
        result.curve.metrics["integrated_brier"]
    )
    # At the horizon, named as a classifier's run names them, beside the baseline and the
    # heuristic: the last horizon's figures.
    for scorer in ("model", "baseline", "heuristic"):
        for name in METRIC_NAMES:
            expected = getattr(result.metrics[scorer], name)
            assert metrics[f"test_{scorer}_{name}"] == pytest.approx(expected)
    assert metrics["test_model_log_loss"] == pytest.approx(metrics["test_model_at_40s_log_loss"])

    artifacts = Path(urlparse(run.info.artifact_uri).path)
    stored = json.loads((artifacts / "curve_metrics.json").read_text())
    assert stored["horizons_s"] == list(grid.horizons_s)
    for horizon in grid.horizons_s:
        assert (artifacts / "plots" / f"reliability_at_{horizon:g}s.png").stat().st_size > 5000
    for plot in ("roc", "reliability", "importance"):
        assert (artifacts / "plots" / f"{plot}.png").stat().st_size > 5000

    tags = registry.version_info(logged.version).tags
    assert tags["model_type"] == "curve"
    assert json.loads(tags["curve_metrics"])[INTEGRATED_BRIER] == pytest.approx(
        result.curve.metrics["integrated_brier"], abs=1e-6
    )
    loaded = registry.load(logged.version)
    assert loaded.model_type is ModelType.CURVE and loaded.curve_model is not None
    test = result.split.test
    np.testing.assert_allclose(loaded.predict_proba(test.X), result.test_probability["model"])


def test_a_registered_curve_serves_its_training_reference(
    tracking: TrackingConfig, registry: ModelRegistry
) -> None:
    result = trained_curve()
    assert result.reference is not None
    logged = register(tracking, result)
    stored = mlflow.artifacts.load_dict(f"{logged.artifact_uri}/{REFERENCE_FILE}")
    assert FeatureReference.from_dict(stored) == result.reference  # the run's, as before
    registry.set_alias(CHAMPION, logged.version)
    scorer = ModelScorer.from_registry(registry)
    assert scorer.model is not None and scorer.model.model_type is ModelType.CURVE
    assert scorer.model.reference == result.reference
    scores = scorer.score(result.split.test.X[:200])
    assert scores.from_model.all() and scores.curves is not None
    assert scores.model_version == logged.version
    assert scores.reference == result.reference


def test_a_classifier_run_and_version_say_their_type(
    tracking: TrackingConfig, registry: ModelRegistry
) -> None:
    logged = register(tracking)
    run = mlflow.MlflowClient(tracking.tracking_uri).get_run(logged.run_id)
    assert run.data.tags["model_type"] == run.data.params["model_type"] == "classifier"
    assert registry.version_info(logged.version).tags["model_type"] == "classifier"
    assert not any("_at_" in key for key in run.data.metrics)


@pytest.mark.slow
def test_the_holdout_is_rebuilt_as_the_curve_was_trained(
    tracking: TrackingConfig, registry: ModelRegistry
) -> None:
    spec = DatasetSpec(every_s=60.0)
    config = dataclasses.replace(FAST, split=(0.5, 0.25, 0.25))
    dataset = build_dataset(seed_table(), spec)
    result = train_curve(dataset, config)
    log_training(result, dataset, trace_source(), tracking)
    candidate = load_candidate(registry)
    assert candidate.classifier.data == {**dataclasses.asdict(spec), "split": [0.5, 0.25, 0.25]}
    rebuilt = build_holdout(seed_table(), candidate)
    assert rebuilt.digest() == result.split.test.digest()


@BOTH_STORES
@pytest.mark.slow
def test_a_curve_replaces_a_classifier_champion_and_back_and_rolls_back(
    tracking: TrackingConfig, registry: ModelRegistry
) -> None:
    holdout = trained().split.test
    assert holdout.digest() == trained_curve().split.test.digest()  # the same rows
    register(tracking)  # version 1: the classifier, champion
    assert promote(registry, load_candidate(registry), holdout, actor="alice").promote

    register(tracking, trained_curve())  # version 2: the curve
    decision = promote(registry, load_candidate(registry), holdout, actor="alice")
    assert decision.promote and decision.reference == "version 1"
    assert {g.metric for g in decision.gates} == AT_HORIZON and decision.curves is None
    assert "version 2 is a curve, version 1 a classifier" in decision.reasons[0]
    assert decision.candidate_metrics == trained_curve().metrics["model"]
    assert decision.reference_metrics == trained().metrics["model"]
    assert registry.aliases() == {CHAMPION: "2", PREVIOUS: "1"}

    # A classifier is judged against the curve champion on the same probabilities: this
    # one is worse at the horizon than the curve, by more than the default slack...
    register(tracking)  # version 3: the classifier again
    kept = promote(registry, load_candidate(registry), holdout, actor="bob")
    assert not kept.promote and kept.reference == "version 2"
    assert "log_loss" in {g.metric for g in kept.gates if not g.passed}
    assert "version 3 is a classifier, version 2 a curve" in kept.reasons[0]
    # ... and within a wider one: it replaces the curve.
    wide = Tolerances(log_loss=0.1, brier=0.1, roc_auc=0.01)
    back = promote(registry, load_candidate(registry), holdout, actor="bob", tolerances=wide)
    assert back.promote and registry.aliases() == {CHAMPION: "3", PREVIOUS: "2"}

    undone = rollback(registry, actor="carol", note="the curve served better")
    assert (undone.from_version, undone.to_version, undone.previous) == ("3", "2", "1")
    assert registry.load_alias(CHAMPION).curve_model is not None
    assert rollback(registry, actor="carol").to_version == "1"
    assert registry.aliases() == {CHAMPION: "1"}
    assert registry.load_alias(CHAMPION).model_type is ModelType.CLASSIFIER


@pytest.mark.slow
def test_a_curve_against_a_curve_champion_is_also_gated_on_the_integrated_brier(
    tracking: TrackingConfig, registry: ModelRegistry
) -> None:
    holdout = trained_curve().split.test
    register(tracking, trained_curve())  # version 1, champion: against the heuristic
    first = promote(registry, load_candidate(registry), holdout, actor="alice")
    assert first.promote and first.reference == "heuristic"
    assert {g.metric for g in first.gates} == AT_HORIZON and first.curves is None

    register(tracking, early_too_low())  # version 2: as good at the horizon, not before
    decision = promote(registry, load_candidate(registry), holdout, actor="bob")
    failed = {g.metric for g in decision.gates if not g.passed}
    assert not decision.promote and failed == {INTEGRATED_BRIER}
    curves = decision.curves
    assert curves is not None
    assert curves["horizons_s"] == list(trained_curve().model.grid.horizons_s)
    assert curves["candidate"] == early_too_low().curve.metrics
    assert curves["reference"] == trained_curve().curve.metrics
    assert decision.as_dict()["curves"] == curves
    assert "integrated_brier" in registry.version_info("2").tags["promotion.why"]
    assert registry.aliases() == {CHAMPION: "1"}


@pytest.mark.slow
def test_retrain_trains_a_curve_and_gates_it_against_the_curve_champion(
    tracking: TrackingConfig, registry: ModelRegistry
) -> None:
    def run(stages: list[str]) -> tuple[str, bool, set[str]]:
        outcome = retrain_seed(
            tracking,
            registry,
            progress=lambda stage, done, total: stages.append(stage),
            model_type=ModelType.CURVE,
        )
        summary = outcome.as_dict()["trained"]
        assert summary["model_type"] == "curve"
        result = outcome.trained.result
        assert isinstance(result, CurveTrainResult)
        assert summary["curve_metrics"] == result.curve.metrics
        gates = {g.metric for g in outcome.decision.gates if g.passed}
        return outcome.trained.logged.version, outcome.decision.promote, gates

    stages: list[str] = []
    assert run(stages) == ("1", True, AT_HORIZON)  # against the heuristic
    assert {"features", "hazard", "baseline", "log", "promote"} <= set(stages)
    # The same data and seed: the same curve, no worse anywhere; promoted on four gates.
    assert run([]) == ("2", True, AT_HORIZON | {INTEGRATED_BRIER})
    assert registry.aliases() == {CHAMPION: "2", PREVIOUS: "1"}
    assert registry.version_info("2").tags["model_type"] == "curve"
