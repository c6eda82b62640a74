"""ModelMetrics of predicted probabilities against labels, weighted, and the plots of a run.

Every metric takes the rows' sample weights (quiet rows of a dataset stand for
``quiet_stride`` rows each, see ``training.dataset``), so that figures are those of the
full grid of cutoffs:

- ROC AUC and PR AUC (average precision): ranking;
- Brier score and log loss: the probabilities themselves, what the scaler consumes;
- expected calibration error (ECE): bins of equal weight along the sorted predictions
  (quantile bins), the weighted mean of ``|mean predicted - observed rate|`` per bin.

Plots use matplotlib's object API on the Agg canvas: no pyplot, no global backend.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

DEFAULT_BINS: Final = 15
PROBABILITY_CLIP: Final = 1e-15
"""Log loss clips probabilities to [clip, 1 - clip]: a certain wrong answer costs ~34.5."""
METRIC_NAMES: Final = ("roc_auc", "pr_auc", "brier", "log_loss", "ece")
GREATER_IS_BETTER: Final = {
    "roc_auc": True,
    "pr_auc": True,
    "brier": False,
    "log_loss": False,
    "ece": False,
}


@dataclass(frozen=True, slots=True)
class ModelMetrics:
    """How good one set of probabilities is on one set of rows."""

    roc_auc: float
    pr_auc: float
    brier: float
    log_loss: float
    ece: float
    rows: int
    positives: int
    base_rate: float
    """Weighted share of positive rows."""

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}

    def scores(self) -> dict[str, float]:
        """Only the five quality metrics."""
        return {name: float(getattr(self, name)) for name in METRIC_NAMES}


def evaluate(
    y: npt.ArrayLike, p: npt.ArrayLike, w: npt.ArrayLike | None = None, *, bins: int = DEFAULT_BINS
) -> ModelMetrics:
    """All metrics of probabilities ``p`` for labels ``y`` with weights ``w`` (default 1).

    AUCs are NaN when the rows hold a single class; the other metrics are always defined.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    labels, prob, weight = _arrays(y, p, w)
    if not len(labels):
        raise ValueError("no rows to evaluate")
    both = bool(labels.any()) and not bool(labels.all())
    return ModelMetrics(
        roc_auc=float(roc_auc_score(labels, prob, sample_weight=weight)) if both else math.nan,
        pr_auc=(
            float(average_precision_score(labels, prob, sample_weight=weight)) if both else math.nan
        ),
        brier=brier(labels, prob, weight),
        log_loss=log_loss(labels, prob, weight),
        ece=expected_calibration_error(labels, prob, weight, bins=bins),
        rows=len(labels),
        positives=int(labels.sum()),
        base_rate=float(np.average(labels, weights=weight)),
    )


def brier(y: Bools, p: Floats, w: Floats) -> float:
    return float(np.average((p - y) ** 2, weights=w))


def log_loss(y: Bools, p: Floats, w: Floats) -> float:
    q = np.clip(p, PROBABILITY_CLIP, 1.0 - PROBABILITY_CLIP)
    return float(np.average(-np.where(y, np.log(q), np.log1p(-q)), weights=w))


def quantile_bins(p: Floats, w: Floats, bins: int = DEFAULT_BINS) -> list[npt.NDArray[np.intp]]:
    """Row indices of up to ``bins`` bins of about equal weight along sorted ``p``."""
    if bins < 1:
        raise ValueError("bins must be >= 1")
    order = np.argsort(p, kind="stable")
    cumulative = np.cumsum(w[order])
    edges = np.searchsorted(cumulative, np.linspace(0, cumulative[-1], bins + 1)[1:-1])
    return [part for part in np.split(order, edges) if len(part)]


@dataclass(frozen=True, slots=True)
class Reliability:
    """Per quantile bin: mean prediction, observed rate and total weight."""

    predicted: Floats
    observed: Floats
    weight: Floats


def reliability(
    y: npt.ArrayLike, p: npt.ArrayLike, w: npt.ArrayLike | None = None, *, bins: int = DEFAULT_BINS
) -> Reliability:
    labels, prob, weight = _arrays(y, p, w)
    parts = quantile_bins(prob, weight, bins)
    return Reliability(
        predicted=np.array([np.average(prob[i], weights=weight[i]) for i in parts]),
        observed=np.array([np.average(labels[i], weights=weight[i]) for i in parts]),
        weight=np.array([weight[i].sum() for i in parts]),
    )


def expected_calibration_error(
    y: npt.ArrayLike, p: npt.ArrayLike, w: npt.ArrayLike | None = None, *, bins: int = DEFAULT_BINS
) -> float:
    curve = reliability(y, p, w, bins=bins)
    gap = np.abs(curve.predicted - curve.observed)
    return float(np.sum(gap * curve.weight) / np.sum(curve.weight))


def _arrays(
    y: npt.ArrayLike, p: npt.ArrayLike, w: npt.ArrayLike | None
) -> tuple[Bools, Floats, Floats]:
    labels = np.asarray(y, dtype=bool)
    prob = np.asarray(p, dtype=np.float64)
    weight = np.ones(len(labels)) if w is None else np.asarray(w, dtype=np.float64)
    if not (labels.shape == prob.shape == weight.shape) or labels.ndim != 1:
        raise ValueError(
            f"labels {labels.shape}, probabilities {prob.shape} and weights {weight.shape} "
            "must be 1-D and of the same length"
        )
    if not np.all(np.isfinite(prob)) or np.any((prob < 0) | (prob > 1)):
        raise ValueError("probabilities must be finite and within [0, 1]")
    if np.any(weight < 0) or (len(weight) and weight.sum() <= 0):
        raise ValueError("weights must be >= 0 with a positive sum")
    return labels, prob, weight


def table(metrics: Mapping[str, ModelMetrics]) -> str:
    """A Markdown table: one row per named set of probabilities."""
    lines = [
        "| scorer | ROC AUC | PR AUC | Brier | log loss | ECE |",
        "|---|---|---|---|---|---|",
    ]
    for name, m in metrics.items():
        lines.append(
            f"| {name} | {m.roc_auc:.4f} | {m.pr_auc:.4f} | {m.brier:.4g} | "
            f"{m.log_loss:.4g} | {m.ece:.3g} |"
        )
    return "\n".join(lines)


# -- plots -----------------------------------------------------------------------------------


def _figure(width: float = 6.0, height: float = 4.5, *, left: float = 0.12) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)  # fixed margins: layout engines are slow
    figure.subplots_adjust(left=left, right=0.97, bottom=0.5 / height + 0.02, top=0.92)
    FigureCanvasAgg(figure)
    return figure


def plot_roc(path: Path, y: npt.ArrayLike, w: npt.ArrayLike, curves: Mapping[str, Floats]) -> Path:
    """ROC curves of several scorers on the same rows."""
    from sklearn.metrics import roc_auc_score, roc_curve

    figure = _figure()
    axes = figure.add_subplot()
    labels, weight = np.asarray(y, dtype=bool), np.asarray(w, dtype=np.float64)
    for name, p in curves.items():
        fpr, tpr, _ = roc_curve(labels, p, sample_weight=weight)
        auc = roc_auc_score(labels, p, sample_weight=weight)
        axes.plot(fpr, tpr, label=f"{name} (AUC {auc:.3f})")
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    axes.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC, test slice")
    axes.legend(loc="lower right")
    figure.savefig(path)
    return path


def plot_reliability(
    path: Path,
    y: npt.ArrayLike,
    w: npt.ArrayLike,
    curves: Mapping[str, Floats],
    *,
    bins: int = DEFAULT_BINS,
    rows: str = "test slice",
) -> Path:
    """Reliability diagram (quantile bins) on log-log axes: rare events stay visible;
    ``rows`` says which, in the title."""
    figure = _figure()
    axes = figure.add_subplot()
    floor = 1e-6
    for name, p in curves.items():
        curve = reliability(y, p, w, bins=bins)
        axes.plot(
            np.maximum(curve.predicted, floor),
            np.maximum(curve.observed, floor),
            marker="o",
            markersize=3,
            label=f"{name} (ECE {expected_calibration_error(y, p, w, bins=bins):.2g})",
        )
    axes.plot([floor, 1], [floor, 1], color="grey", linestyle=":", linewidth=1)
    axes.set(
        xscale="log",
        yscale="log",
        xlabel="mean predicted probability",
        ylabel="observed connect rate",
        title=f"Reliability, {bins} quantile bins, {rows}",
    )
    axes.legend(loc="upper left")
    figure.savefig(path)
    return path


def plot_importance(
    path: Path, names: Sequence[str], gains: npt.ArrayLike, *, top: int = 23
) -> Path:
    """Total gain per feature, largest first."""
    values = np.asarray(gains, dtype=np.float64)
    total = values.sum() or 1.0
    order = np.argsort(values)[::-1][:top][::-1]
    figure = _figure(6.0, 0.25 * len(order) + 1.2, left=0.3)
    axes = figure.add_subplot()
    axes.barh([names[i] for i in order], values[order] / total)
    axes.set(xlabel="share of total gain", title="LightGBM feature importance")
    figure.savefig(path)
    return path
