from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest

from features.definitions import FEATURE_NAMES
from models.classifier import ConnectClassifier, Floats
from models.heuristic import HeuristicScorer
from models.model_scorer import FallbackReason, ModelScorer
from models.registry import CHAMPION, LoadedModel, ModelRegistry
from models.scoring import Scorer
from tests.lifecycle import FAST, register, seed_dataset, trained
from tests.models.test_scorer_contract import assert_well_formed
from training.tracking import TrackingConfig

N = len(FEATURE_NAMES)


def loaded(version: str = "7", classifier: ConnectClassifier | None = None) -> LoadedModel:
    """A model as the registry hands it out (built from the trained classifier directly)."""
    result = trained()
    return LoadedModel("m", version, classifier or result.classifier, result.split.test.X[:5])


def features() -> Floats:
    return trained().split.test.X[:200].copy()


def counts(scorer: ModelScorer) -> dict[str, int]:
    return {k: v for k, v in scorer.fallback_rows().items() if v}


class RaisingBooster:
    """Stand-ins for failures a real booster cannot be made to produce on demand."""

    def predict(self, matrix: Floats, **params: object) -> Floats:
        raise RuntimeError("boom")


class PartlyNaNBooster:
    def predict(self, matrix: Floats, **params: object) -> Floats:
        out = np.full(len(matrix), 0.2)
        out[::3] = np.nan
        return out


def test_with_a_model_every_row_comes_from_it() -> None:
    scorer = ModelScorer(loaded())
    x = features()
    scores = scorer.score(x)
    np.testing.assert_allclose(scores.probability, trained().classifier.predict_proba(x))
    assert scores.from_model.all() and scores.model_version == "7"
    assert scores.horizon_s == scorer.horizon_s == 40.0
    assert counts(scorer) == {}
    assert_well_formed(scorer, x)


def test_without_a_model_the_heuristic_answers_and_is_counted() -> None:
    scorer = ModelScorer(horizon_s=30.0)
    x = features()
    scores = scorer.score(x)
    np.testing.assert_array_equal(scores.probability, HeuristicScorer().score(x).probability)
    assert not scores.from_model.any() and scores.model_version is None
    assert scores.horizon_s == 30.0
    scorer.score(x[:10])
    assert counts(scorer) == {"no_model": 210}
    assert scorer.fallback_calls()["no_model"] == 2


def test_rows_with_missing_features_fall_back_one_by_one() -> None:
    scorer = ModelScorer(loaded())
    x = features()
    x[[3, 50], 5] = np.nan
    x[7, 0] = np.inf
    before = x.copy()
    scores = scorer.score(x)
    np.testing.assert_array_equal(x, before)
    assert np.flatnonzero(~scores.from_model).tolist() == [3, 7, 50]
    heuristic = HeuristicScorer().score(x[[3, 7, 50]]).probability
    np.testing.assert_array_equal(scores.probability[[3, 7, 50]], heuristic)
    rest = np.setdiff1d(np.arange(len(x)), [3, 7, 50])
    np.testing.assert_allclose(
        scores.probability[rest], trained().classifier.predict_proba(x[rest])
    )
    assert counts(scorer) == {"bad_features": 3}
    assert_well_formed(scorer, x)


def test_a_matrix_of_other_columns_or_a_model_of_other_features_falls_back() -> None:
    scorer = ModelScorer(loaded())
    wide = np.hstack([features(), np.zeros((200, 1))])
    assert not scorer.score(wide).from_model.any()
    other = dataclasses.replace(
        trained().classifier, feature_names=(*FEATURE_NAMES[:-1], "renamed")
    )
    scorer.swap(loaded(classifier=other))
    assert not scorer.score(features()).from_model.any()
    assert counts(scorer) == {"bad_features": 400}
    with pytest.raises(ValueError, match="not a feature matrix"):
        scorer.score(np.zeros((4, 3)))  # not even the heuristic can read this


def test_a_model_that_raises_falls_back_for_the_call() -> None:
    broken = dataclasses.replace(trained().classifier, booster=RaisingBooster())
    scorer = ModelScorer(loaded(classifier=broken))
    scores = scorer.score(features())
    assert not scores.from_model.any() and scores.model_version is None
    assert counts(scorer) == {"predict_error": 200}
    assert_well_formed(scorer, features())


def test_non_finite_predictions_fall_back_row_by_row() -> None:
    odd = dataclasses.replace(trained().classifier, booster=PartlyNaNBooster())
    scorer = ModelScorer(loaded(classifier=odd))
    x = features()
    scores = scorer.score(x)
    assert np.flatnonzero(~scores.from_model).tolist() == list(range(0, 200, 3))
    assert scores.model_version == "7"
    assert counts(scorer) == {"not_finite": 67}
    assert_well_formed(scorer, x)


@pytest.mark.slow
def test_reload_from_the_registry(registry: ModelRegistry, tracking: TrackingConfig) -> None:
    scorer = ModelScorer.from_registry(registry)
    assert scorer.model is None and "alias" in (scorer.last_error or "")
    scorer.score(features())
    assert counts(scorer) == {"no_model": 200}

    register(tracking)
    registry.client.set_registered_model_alias(registry.model_name, CHAMPION, "1")
    assert scorer.reload(registry)
    assert scorer.model_version == "1" and scorer.last_error is None
    assert scorer.score(features()).from_model.all()

    register(tracking)
    registry.client.set_registered_model_alias(registry.model_name, CHAMPION, "2")
    location = registry.client.get_model_version_download_uri(registry.model_name, "2")
    (Path(urlparse(location).path) / "model.lgb").write_text("garbage")
    assert not scorer.reload(registry)  # keeps serving version 1
    assert scorer.model_version == "1" and "damaged" in (scorer.last_error or "")
    assert scorer.score(features()).from_model.all()

    fresh = ModelScorer.from_registry(registry)  # no model held: load_failed
    fresh.score(features())
    assert counts(fresh) == {"load_failed": 200}


def test_swap_is_atomic_for_calls_in_flight() -> None:
    a, b = loaded("1"), loaded("2")
    scorer = ModelScorer(a)
    x = features()
    expected = trained().classifier.predict_proba(x)
    stop = threading.Event()
    problems: list[str] = []

    def score_forever() -> None:
        while not stop.is_set():
            scores = scorer.score(x)
            if scores.model_version not in ("1", "2") or not scores.from_model.all():
                problems.append(repr(scores.model_version))
            if not np.allclose(scores.probability, expected):
                problems.append("probabilities")

    workers = [threading.Thread(target=score_forever) for _ in range(3)]
    for worker in workers:
        worker.start()
    for k in range(200):
        assert scorer.swap(b if k % 2 == 0 else a) is (a if k % 2 == 0 else b)
    stop.set()
    for worker in workers:
        worker.join()
    assert problems == []


@pytest.mark.parametrize(
    "make",
    [
        lambda: ModelScorer(loaded()),
        ModelScorer,
        lambda: ModelScorer(
            loaded(classifier=dataclasses.replace(trained().classifier, booster=PartlyNaNBooster()))
        ),
    ],
    ids=["model", "no-model", "partly-nan"],
)
def test_the_scorer_contract_holds(make: object) -> None:
    assert callable(make)
    scorer: Scorer = make()
    rng = np.random.default_rng(0)
    for matrix in (
        features(),
        np.zeros((0, N)),
        np.full((3, N), np.nan),
        rng.normal(0, 1e6, (50, N)),
        np.where(rng.random((50, N)) < 0.2, np.inf, features()[:50]),
    ):
        assert_well_formed(scorer, matrix)


def test_every_reason_is_counted_even_when_zero() -> None:
    scorer = ModelScorer()
    assert set(scorer.fallback_rows()) == {r.value for r in FallbackReason}
    assert set(scorer.fallback_calls()) == {r.value for r in FallbackReason}


def test_a_time_to_connect_model_scores_curves_and_the_fallback_rows_carry_theirs() -> None:
    from models.connect_curve import CurveKind, carried_curve, within
    from training.curve import fit_curve

    curve_model = fit_curve(seed_dataset(), CurveKind.HAZARD, config=FAST).model
    scorer = ModelScorer(LoadedModel("m", "8", curve_model, features()[:5]))
    x = features()
    x[1, 0] = np.nan  # this row falls back to the heuristic
    scores = scorer.score(x)
    assert scores.curves is not None and scores.curves[0] == curve_model.grid
    curves = scores.curves[1]
    model_rows = np.flatnonzero(scores.from_model)
    assert not scores.from_model[1] and len(model_rows) == len(x) - 1
    np.testing.assert_allclose(curves[model_rows], curve_model.curve(x[model_rows]))
    np.testing.assert_allclose(curves[:, -1], scores.probability)
    heuristic = HeuristicScorer(horizon_s=40.0).score(x[1:2]).probability
    np.testing.assert_allclose(curves[1], carried_curve(heuristic, 40.0, curve_model.grid)[0])
    # the lead time is read off the curve, not carried by a constant hazard
    np.testing.assert_allclose(scores.within(20.0), within(curves, curve_model.grid, 20.0))
    assert not np.allclose(
        scores.within(20.0)[model_rows], 1 - (1 - scores.probability[model_rows]) ** 0.5
    )
    assert_well_formed(scorer, x)
