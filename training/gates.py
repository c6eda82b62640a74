"""The promotion gates: whether a candidate beats the reference, and the decision that says so.

A candidate and a reference (the ``champion``, or the heuristic) are scored on the same
holdout. The candidate passes only when, beyond small tolerances, it is no worse on log loss
and Brier score and no lower on ROC AUC:

    log_loss(candidate) <= log_loss(champion) * (1 + tolerances.log_loss)
    brier(candidate)    <= brier(champion)    * (1 + tolerances.brier)
    roc_auc(candidate)  >= roc_auc(champion)  - tolerances.roc_auc

Every model is judged on its probability of a connect within the horizon, whatever its
type (``models.model_types``): a time-to-connect curve on its last point, the classifier's
question, so that a curve can replace a classifier champion and a classifier a curve. When
the candidate and the champion are both curves, a fourth gate weighs the whole curve, the
integrated Brier score (``training.curve.curve_metrics``) of both on the candidate's
horizons, with the Brier score's slack:

    integrated_brier(candidate) <= integrated_brier(champion) * (1 + tolerances.brier)

MLflow's ``MetricThreshold`` only expresses required *improvements* (its minimum changes
must be positive), not an allowed slack, so the gates are these few lines instead. Against
the heuristic there is no tolerance (:data:`STRICT`): the first model must beat it.

Pure: nothing here reads or writes the registry (:mod:`training.promote` does).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Final

from training.defaults import (
    DEFAULT_AUC_TOLERANCE,
    DEFAULT_BRIER_TOLERANCE,
    DEFAULT_LOG_LOSS_TOLERANCE,
)
from training.evaluate import ModelMetrics


@dataclass(frozen=True, slots=True)
class Tolerances:
    log_loss: float = DEFAULT_LOG_LOSS_TOLERANCE
    """Relative log-loss increase allowed."""
    brier: float = DEFAULT_BRIER_TOLERANCE
    """Relative Brier-score increase allowed."""
    roc_auc: float = DEFAULT_AUC_TOLERANCE
    """Absolute ROC AUC decrease allowed."""

    def __post_init__(self) -> None:
        if min(self.log_loss, self.brier, self.roc_auc) < 0:
            raise ValueError("tolerances must be >= 0")


INTEGRATED_BRIER: Final = "integrated_brier"
DEFAULT_TOLERANCES: Final = Tolerances()
STRICT: Final = Tolerances(0.0, 0.0, 0.0)


@dataclass(frozen=True, slots=True)
class Gate:
    metric: str
    candidate: float
    reference: float
    limit: float
    greater_is_better: bool
    passed: bool

    def describe(self, reference_name: str) -> str:
        op = ">=" if self.greater_is_better else "<="
        verdict = "ok" if self.passed else "FAILED"
        return (
            f"{self.metric} {self.candidate:.6g} {op} {self.limit:.6g} "
            f"({reference_name} {self.reference:.6g}): {verdict}"
        )


def lower_gate(metric: str, candidate: float, reference: float, relative: float) -> Gate:
    """Passes when ``candidate <= reference * (1 + relative)`` (a NaN fails)."""
    limit = reference * (1.0 + relative)
    return Gate(metric, candidate, reference, limit, False, bool(candidate <= limit))


def check_gates(
    candidate: ModelMetrics, reference: ModelMetrics, tolerances: Tolerances
) -> tuple[Gate, ...]:
    """The three gates at the horizon of the module docstring (a NaN on either side fails
    its gate)."""

    def lower(metric: str, relative: float) -> Gate:
        return lower_gate(metric, getattr(candidate, metric), getattr(reference, metric), relative)

    c, r = candidate.roc_auc, reference.roc_auc
    limit = r - tolerances.roc_auc
    return (
        lower("log_loss", tolerances.log_loss),
        lower("brier", tolerances.brier),
        Gate("roc_auc", c, r, limit, True, bool(c >= limit)),
    )


def check_curve_gate(
    candidate: Mapping[str, Any], reference: Mapping[str, Any], tolerances: Tolerances
) -> Gate:
    """The integrated-Brier gate of two curves' metrics (``training.curve.curve_metrics``)
    on the same rows and horizons."""
    if candidate["horizons_s"] != reference["horizons_s"]:
        raise ValueError("the curves were measured at other horizons: they cannot be compared")
    return lower_gate(
        INTEGRATED_BRIER,
        float(candidate[INTEGRATED_BRIER]),
        float(reference[INTEGRATED_BRIER]),
        tolerances.brier,
    )


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    candidate: str
    reference: str
    """``version N`` or ``heuristic``: what the candidate was measured against."""
    champion: str | None
    """The champion version when the decision was made (None: none)."""
    gates: tuple[Gate, ...]
    reasons: tuple[str, ...]
    candidate_metrics: ModelMetrics | None
    reference_metrics: ModelMetrics | None
    holdout: dict[str, Any]
    dry_run: bool = False
    applied: bool = False
    actor: str | None = None
    at: str | None = None
    live: dict[str, Any] | None = None
    """The live evidence the decision also weighed (``promote --live``; None: none)."""
    curves: dict[str, Any] | None = None
    """When the candidate and the champion are both curves: the horizons, and each one's
    curve metrics on the holdout there (``candidate``, ``reference``); None otherwise."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "decision": self.verdict,
            "promote": self.promote,
            "candidate": self.candidate,
            "reference": self.reference,
            "champion_before": self.champion,
            "reasons": list(self.reasons),
            "gates": [asdict(g) for g in self.gates],
            "candidate_metrics": _metrics_dict(self.candidate_metrics),
            "reference_metrics": _metrics_dict(self.reference_metrics),
            "holdout": self.holdout,
            "live": self.live,
            "curves": self.curves,
            "dry_run": self.dry_run,
            "applied": self.applied,
            "actor": self.actor,
            "at": self.at,
        }

    @property
    def verdict(self) -> str:
        """``promoted``, ``would promote`` (dry run), ``promote`` (not applied), ``rejected``."""
        if not self.promote:
            return "rejected"
        if self.applied:
            return "promoted"
        return "would promote" if self.dry_run else "promote"


def _metrics_dict(metrics: ModelMetrics | None) -> dict[str, float] | None:
    return metrics.as_dict() if metrics is not None else None
