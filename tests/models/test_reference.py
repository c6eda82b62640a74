from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from models.classifier import ClassifierFormatError, load_model, save_model
from models.reference import (
    PSI_DRIFTED,
    PSI_STABLE,
    REFERENCE_FILE,
    FeatureReference,
)
from tests.lifecycle import trained

NAMES = ("x", "flag", "constant", "gappy")


def training_matrix(rows: int = 20_000, seed: int = 0) -> np.ndarray[Any, np.dtype[np.float64]]:
    """A continuous feature, a binary one (10 % ones), a constant and one with NaNs."""
    rng = np.random.default_rng(seed)
    gappy = rng.exponential(5.0, rows)
    gappy[rng.random(rows) < 0.3] = np.nan
    return np.column_stack(
        [rng.normal(0.0, 1.0, rows), rng.random(rows) < 0.1, np.full(rows, 7.0), gappy]
    ).astype(np.float64)


def test_bins_are_quantiles_with_discrete_constant_and_missing_values_kept_apart() -> None:
    reference = FeatureReference.fit(training_matrix(), NAMES, bins=10)
    x, flag, constant, _ = reference.edges
    assert len(x) == 9  # deciles: ten value bins of a tenth each, and an empty NaN bin
    np.testing.assert_allclose(reference.shares[0][:10], 0.1, atol=0.002)
    assert reference.shares[0][10] == 0.0
    assert flag[0] == 0.0  # zeros in one bin, ones in another
    assert reference.shares[1][0] == pytest.approx(0.9, abs=0.01)
    assert sum(reference.shares[1][1:]) == pytest.approx(0.1, abs=0.01)
    assert constant == (7.0,) and reference.shares[2] == (1.0, 0.0, 0.0)
    assert reference.shares[3][-1] == pytest.approx(0.3, abs=0.01)  # the NaN bin
    assert reference.rows == 20_000 and reference.n_bins == 11
    counts = reference.counts(training_matrix(rows=1000, seed=1))
    assert counts.shape == (4, 11) and np.all(counts.sum(axis=1) == 1000)


def test_psi_reads_stable_on_the_same_distribution_and_drifted_on_a_shift() -> None:
    reference = FeatureReference.fit(training_matrix(), NAMES)
    same = reference.psi(reference.counts(training_matrix(rows=5000, seed=2)))
    assert np.all(same < PSI_STABLE), same
    shifted = training_matrix(rows=5000, seed=3)
    shifted[:, 0] += 1.0  # one standard deviation
    shifted[:, 1] = 1.0  # every row flagged
    shifted[:, 3] = np.nan  # the feature went missing
    psi = reference.psi(reference.counts(shifted))
    assert np.all(psi[[0, 1, 3]] > PSI_DRIFTED), psi
    assert psi[2] < PSI_STABLE  # the constant stayed
    assert np.isnan(reference.psi(np.zeros((4, reference.n_bins)))).all()  # nothing observed


def test_weights_make_the_shares_those_of_the_full_grid() -> None:
    matrix = np.array([[0.0], [1.0], [1.0], [1.0]])
    reference = FeatureReference.fit(matrix, ["f"], bins=2, weights=np.array([3.0, 1, 1, 1]))
    assert reference.edges == ((0.0,),) and reference.shares == ((0.5, 0.5, 0.0),)


def test_it_round_trips_through_json_and_refuses_bad_input() -> None:
    reference = FeatureReference.fit(training_matrix(rows=2000), NAMES)
    data = json.loads(json.dumps(reference.to_dict()))
    assert FeatureReference.from_dict(data) == reference
    for broken, message in [
        (data | {"format": 2}, "format"),
        ({k: v for k, v in data.items() if k != "shares"}, "shares"),
        (data | {"rows": "many"}, "rows"),
        (data | {"edges": [[1.0, 0.0], *data["edges"][1:]]}, "increasing"),
        (data | {"shares": [[1.0], *data["shares"][1:]]}, "shares"),
        (data | {"feature_names": ["x", "x", "y", "z"]}, "distinct"),
    ]:
        with pytest.raises(ValueError, match=message):
            FeatureReference.from_dict(broken)
    with pytest.raises(ValueError, match="feature matrix"):
        reference.counts(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="counts of shape"):
        reference.psi(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="at least one row"):
        FeatureReference.fit(np.zeros((0, 4)), NAMES)


def test_a_feature_without_finite_training_values_has_one_value_bin() -> None:
    reference = FeatureReference.fit(np.full((10, 1), np.nan), ["f"])
    assert reference.edges == ((),) and reference.shares == ((0.0, 1.0),)
    assert reference.psi(reference.counts(np.ones((10, 1))))[0] > PSI_DRIFTED


def test_training_stores_the_reference_with_the_model(tmp_path: Path) -> None:
    result = trained()
    assert result.reference is not None
    assert result.reference.feature_names == result.classifier.feature_names
    assert result.reference.rows == len(result.split.train)
    save_model(result.classifier, tmp_path / "model", result.split.test.X[:3], result.reference)
    assert load_model(tmp_path / "model").reference == result.reference
    # Saved without one (as every version before references), it loads with none.
    save_model(result.classifier, tmp_path / "old", result.split.test.X[:3])
    assert load_model(tmp_path / "old").reference is None
    (tmp_path / "model" / "extra_files" / REFERENCE_FILE).write_text("{}")
    with pytest.raises(ClassifierFormatError, match=REFERENCE_FILE):
        load_model(tmp_path / "model")
