from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
from sklearn.metrics import log_loss as sk_log_loss

from features.definitions import FEATURE_NAMES
from training.evaluate import (
    evaluate,
    expected_calibration_error,
    plot_importance,
    plot_reliability,
    plot_roc,
    quantile_bins,
    reliability,
    table,
)

PNG = b"\x89PNG\r\n\x1a\n"


def calibrated_sample(n: int = 20_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.beta(0.5, 8.0, n)
    y = rng.random(n) < p
    return y, p


def test_metrics_agree_with_scikit_learn_with_weights() -> None:
    y, p = calibrated_sample(5000)
    w = np.random.default_rng(1).choice([1.0, 10.0], len(y))
    m = evaluate(y, p, w)
    assert m.roc_auc == pytest.approx(roc_auc_score(y, p, sample_weight=w))
    assert m.pr_auc == pytest.approx(average_precision_score(y, p, sample_weight=w))
    assert m.brier == pytest.approx(brier_score_loss(y, p, sample_weight=w))
    assert m.log_loss == pytest.approx(sk_log_loss(y, p, sample_weight=w))
    assert m.rows == len(y) and m.positives == int(y.sum())
    assert m.base_rate == pytest.approx(np.average(y, weights=w))


def test_a_weight_counts_like_repeated_rows() -> None:
    y, p = calibrated_sample(3000, seed=2)
    w = np.where(np.arange(len(y)) % 3 == 0, 3.0, 1.0)
    repeat = w.astype(int)
    weighted = evaluate(y, p, w)
    repeated = evaluate(np.repeat(y, repeat), np.repeat(p, repeat))
    for name in ("roc_auc", "pr_auc", "brier", "log_loss"):
        assert getattr(weighted, name) == pytest.approx(getattr(repeated, name), rel=1e-9)
    assert weighted.ece == pytest.approx(repeated.ece, abs=2e-3)  # bin edges may differ a row


def test_ece_is_small_when_calibrated_and_large_when_not() -> None:
    y, p = calibrated_sample()
    assert expected_calibration_error(y, p) < 0.01
    doubled = np.minimum(2 * p, 1.0)
    assert expected_calibration_error(y, doubled) > 5 * expected_calibration_error(y, p)
    assert expected_calibration_error(y, doubled) == pytest.approx(
        np.mean(doubled) - np.mean(y), rel=0.2
    )


def test_quantile_bins_hold_equal_weight() -> None:
    y, p = calibrated_sample(9000)
    w = np.random.default_rng(3).choice([1.0, 5.0], len(p))
    parts = quantile_bins(p, w, 10)
    assert len(parts) == 10
    assert sorted(np.concatenate(parts).tolist()) == list(range(len(p)))
    totals = [w[i].sum() for i in parts]
    assert max(totals) - min(totals) <= 2 * w.max()
    for left, right in itertools.pairwise(parts):
        assert p[left].max() <= p[right].min()  # bins follow the sorted predictions
    curve = reliability(y, p, w, bins=10)
    assert np.all(np.diff(curve.predicted) >= 0)
    assert curve.weight.sum() == pytest.approx(w.sum())


def test_single_class_gives_nan_aucs_but_the_rest() -> None:
    m = evaluate(np.zeros(10, dtype=bool), np.full(10, 0.1))
    assert math.isnan(m.roc_auc) and math.isnan(m.pr_auc)
    assert m.brier == pytest.approx(0.01)
    assert m.log_loss == pytest.approx(-math.log(0.9))
    assert m.ece == pytest.approx(0.1)


def test_certain_mistakes_cost_a_finite_log_loss() -> None:
    m = evaluate(np.array([True, False]), np.array([0.0, 0.0]))
    assert math.isfinite(m.log_loss) and m.log_loss > 15


@pytest.mark.parametrize(
    ("y", "p", "w"),
    [
        ([True, False], [0.5], None),
        ([True, False], [0.5, 1.5], None),
        ([True, False], [0.5, np.nan], None),
        ([True, False], [0.5, 0.5], [1.0, -1.0]),
        ([], [], None),
    ],
)
def test_bad_input_is_refused(y: list[bool], p: list[float], w: list[float] | None) -> None:
    with pytest.raises(ValueError):
        evaluate(y, p, w)


def test_plots_are_png_files(tmp_path: Path) -> None:
    y, p = calibrated_sample(2000)
    w = np.ones(len(y))
    curves = {"model": p, "noise": np.random.default_rng(0).random(len(y))}
    written = [
        plot_roc(tmp_path / "roc.png", y, w, curves),
        plot_reliability(tmp_path / "reliability.png", y, w, curves),
        plot_importance(tmp_path / "importance.png", FEATURE_NAMES, np.arange(len(FEATURE_NAMES))),
    ]
    for path in written:
        assert path.read_bytes()[:8] == PNG and path.stat().st_size > 5000


def test_table_lists_each_scorer() -> None:
    y, p = calibrated_sample(1000)
    text = table({"model": evaluate(y, p), "heuristic": evaluate(y, np.full(len(y), 0.5))})
    lines = text.splitlines()
    assert lines[0].startswith("| scorer | ROC AUC")
    assert [line.split("|")[1].strip() for line in lines[2:]] == ["model", "heuristic"]
