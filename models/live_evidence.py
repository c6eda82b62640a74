"""Live evidence: how a model version does in service, as logged to its MLflow run.

The live service settles its predictions (did the user connect within the horizon?) and
measures each version it scored with over a recent window; it logs those figures
periodically to the version's run (``models.registry.ModelRegistry.log_live``) as
time-stepped metrics: the step is the unix second of the measurement and the timestamp its
millisecond, so the champion's and the challenger's figures logged in one call share a
step. The metric keys, written once here:

| key | what |
|---|---|
| ``live_n`` | settled predictions in the window |
| ``live_log_loss``, ``live_brier``, ``live_ece``, ``live_auc`` | their log loss, Brier score, expected calibration error, ROC AUC |
| ``live_base_rate`` | the share of them that connected |
| ``live_psi_max`` | the largest feature PSI against the training reference |
| ``live_degraded`` | 1 when the health monitor says degraded, else 0 |
| ``live_window_s`` | the window's length, seconds |
"""  # noqa: E501

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

LIVE_PREFIX: Final = "live_"
LIVE_N: Final = "live_n"
LIVE_LOG_LOSS: Final = "live_log_loss"
LIVE_BRIER: Final = "live_brier"
LIVE_ECE: Final = "live_ece"
LIVE_AUC: Final = "live_auc"
LIVE_BASE_RATE: Final = "live_base_rate"
LIVE_PSI_MAX: Final = "live_psi_max"
LIVE_DEGRADED: Final = "live_degraded"
LIVE_WINDOW_S: Final = "live_window_s"
LIVE_KEYS: Final = (
    LIVE_N,
    LIVE_LOG_LOSS,
    LIVE_BRIER,
    LIVE_ECE,
    LIVE_AUC,
    LIVE_BASE_RATE,
    LIVE_PSI_MAX,
    LIVE_DEGRADED,
    LIVE_WINDOW_S,
)
"""Every live metric key; ``live_n`` is the one every logged step carries."""


def live_key(name: str) -> str:
    """The live metric key of ``name`` (``log_loss`` or ``live_log_loss``); ValueError for
    a name that is none."""
    key = name if name.startswith(LIVE_PREFIX) else LIVE_PREFIX + name
    if key not in LIVE_KEYS:
        raise ValueError(f"{name!r} is no live metric; known: {', '.join(LIVE_KEYS)}")
    return key


def live_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    """``metrics`` by their live keys, the values as floats; the values that are not finite
    (an AUC of a single class) are left out, and ``live_n`` must be there, finite and >= 0."""
    out: dict[str, float] = {}
    for name, value in metrics.items():
        key = live_key(name)
        if key in out:
            raise ValueError(f"{key} given twice")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{key} must be a number, not {value!r}")
        if math.isfinite(value):
            out[key] = float(value)
    if out.get(LIVE_N, -1.0) < 0:
        raise ValueError(f"live metrics need a finite {LIVE_N} >= 0")
    return out


@dataclass(frozen=True)
class LiveEvidence:
    """The live metrics of one version at one logged step."""

    version: str
    step: int
    """The unix second the figures were measured at (the service's ``at``)."""
    at: float
    """The same instant in seconds, to the millisecond (the metrics' timestamp)."""
    metrics: Mapping[str, float] = field(default_factory=dict)
    """Values by live key; a key not logged at this step is missing."""

    def get(self, key: str) -> float | None:
        return self.metrics.get(live_key(key))

    @property
    def n(self) -> float:
        return self.metrics.get(LIVE_N, 0.0)

    @property
    def degraded(self) -> bool | None:
        """Whether the health monitor said degraded (None: not logged)."""
        value = self.metrics.get(LIVE_DEGRADED)
        return None if value is None else value >= 0.5

    def age_s(self, now: float) -> float:
        return now - self.at

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "step": self.step,
            "at": self.at,
            "metrics": dict(self.metrics),
        }
