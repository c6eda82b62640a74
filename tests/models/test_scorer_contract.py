"""The contract every scorer meets, checked over each implementation (River's ``checks/``).

To check another scorer, append a factory to ``SCORER_FACTORIES``: a zero-argument callable
that returns a ready scorer (e.g. a model scorer loaded from a fixture registry).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from features.definitions import FEATURE_NAMES
from features.online import OnlineFeatures
from models.heuristic import HeuristicScorer
from models.scoring import Floats, Scorer, Source
from simulation.workloads import DEFAULT_START, generate

ScorerFactory = Callable[[], Scorer]

SCORER_FACTORIES: list[tuple[str, ScorerFactory]] = [
    ("heuristic", HeuristicScorer),
]
"""(name, factory) of every scorer under the contract; append new scorers here."""

N_FEATURES = len(FEATURE_NAMES)


@pytest.fixture(params=[f for _, f in SCORER_FACTORIES], ids=[n for n, _ in SCORER_FACTORIES])
def scorer(request: pytest.FixtureRequest) -> Scorer:
    factory: ScorerFactory = request.param
    return factory()


@pytest.fixture(scope="module")
def real_features() -> Floats:
    """Feature matrices of the seed workload's users at a few times (what the engine sends)."""
    online = OnlineFeatures()
    rows: list[Floats] = []
    checkpoints = [DEFAULT_START + 600.0 * k for k in range(1, 7)]
    for event in generate("seed", hours=1, seed=3):
        while checkpoints and event.ts > checkpoints[0]:
            rows.append(online.features(round(checkpoints.pop(0) * 1000)))
        online.update(event)
    return np.concatenate(rows)


def assert_well_formed(scorer: Scorer, features: Floats) -> None:
    scores = scorer.score(features)
    assert len(scores) == len(features)
    assert scores.probability.shape == (len(features),)
    assert scores.probability.dtype == np.float64
    assert np.all(np.isfinite(scores.probability))
    assert np.all((scores.probability >= 0.0) & (scores.probability <= 1.0))
    assert scores.from_model.shape == (len(features),)
    assert scores.from_model.dtype == np.bool_
    if scores.from_model.any():
        assert scores.model_version is not None
    assert scores.horizon_s == scorer.horizon_s > 0
    for row in range(len(features)):
        assert scores.source(row) in (Source.MODEL, Source.HEURISTIC)


def test_real_features_give_probabilities(scorer: Scorer, real_features: Floats) -> None:
    assert real_features.shape[1] == N_FEATURES and len(real_features) > 100
    assert_well_formed(scorer, real_features)
    probability = scorer.score(real_features).probability
    assert probability.std() > 0  # it does tell users apart


def test_no_rows(scorer: Scorer) -> None:
    assert_well_formed(scorer, np.zeros((0, N_FEATURES)))


def test_deterministic(scorer: Scorer, real_features: Floats) -> None:
    a, b = scorer.score(real_features), scorer.score(real_features.copy())
    np.testing.assert_array_equal(a.probability, b.probability)
    np.testing.assert_array_equal(a.from_model, b.from_model)
    assert a.model_version == b.model_version


def test_input_untouched(scorer: Scorer, real_features: Floats) -> None:
    features = real_features.copy()
    features[::7, :] = np.nan  # with missing values too
    before = features.copy()
    scorer.score(features)
    np.testing.assert_array_equal(features, before)


def test_rows_are_scored_independently(scorer: Scorer, real_features: Floats) -> None:
    whole = scorer.score(real_features).probability
    rows = np.arange(0, len(real_features), 5)
    part = scorer.score(real_features[rows]).probability
    np.testing.assert_allclose(part, whole[rows], rtol=1e-12, atol=1e-12)
    single = scorer.score(real_features[rows[:1]]).probability
    np.testing.assert_allclose(single, whole[rows[:1]], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("column", FEATURE_NAMES)
@pytest.mark.parametrize("missing", [np.nan, np.inf, -np.inf])
def test_any_missing_feature_is_handled(
    scorer: Scorer, real_features: Floats, column: str, missing: float
) -> None:
    features = real_features[:50].copy()
    features[:, FEATURE_NAMES.index(column)] = missing
    assert_well_formed(scorer, features)


def test_every_feature_missing_is_handled(scorer: Scorer) -> None:
    assert_well_formed(scorer, np.full((3, N_FEATURES), np.nan))


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(
        np.float64,
        st.tuples(st.integers(0, 20), st.just(N_FEATURES)),
        elements=st.floats(allow_nan=True, allow_infinity=True, width=64),
    )
)
def test_arbitrary_matrices_are_handled(features: Floats) -> None:
    for _, factory in SCORER_FACTORIES:
        scorer = factory()
        assert_well_formed(scorer, features)
