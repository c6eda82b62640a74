"""Live evidence per model version: what the live service logs to each version's MLflow run.

``evidence(live, window_s)`` maps ``Engine.live(now)`` to, per version that is the
``champion`` or the ``challenger`` and is a registered model version (not the heuristic,
nor the label of an unversioned model), its figures over the window ``window_s`` under the
keys of ``models.live_evidence`` (``live_n``, ``live_log_loss``, ``live_brier``,
``live_ece``, ``live_auc``, ``live_base_rate``, ``live_window_s``). Figures the window does
not have (nothing settled; an AUC of one class) are left out; ``live_n`` is always there,
0 when nothing settled in the window. A version the log holds nothing about is left out.
The champion's also carry its health (``live["health"]``, ``service.model_health``):
``live_degraded`` (1 or 0) and, once features were counted, ``live_psi_max``; these are
what ``retrain --when-degraded`` reads. Pure: the live shell calls it and logs the result
(``service.evidence_log``).
"""

from __future__ import annotations

from typing import Any, Final

from models.live_evidence import (
    LIVE_AUC,
    LIVE_BASE_RATE,
    LIVE_BRIER,
    LIVE_DEGRADED,
    LIVE_ECE,
    LIVE_LOG_LOSS,
    LIVE_N,
    LIVE_PSI_MAX,
    LIVE_WINDOW_S,
)
from service.engine import UNVERSIONED
from service.live_metrics import window_name
from service.prediction_log import HEURISTIC

ROLES: Final = ("champion", "challenger")
"""The roles whose evidence is logged."""
_KEYS: Final = (
    ("n", LIVE_N),
    ("log_loss", LIVE_LOG_LOSS),
    ("brier", LIVE_BRIER),
    ("ece", LIVE_ECE),
    ("auc", LIVE_AUC),
    ("base_rate", LIVE_BASE_RATE),
)
"""A window's figure and its live key."""
NOT_VERSIONS: Final = frozenset({HEURISTIC, UNVERSIONED})
"""Labels of the prediction log that name no registered version."""


def evidence(live: dict[str, Any], window_s: float) -> dict[str, dict[str, float]]:
    """Per registered version in the role of champion or challenger, its live metrics over
    ``window_s`` (one of the windows of ``live``; KeyError otherwise), by live key."""
    name = window_name(window_s)
    out: dict[str, dict[str, float]] = {}
    for version, report in live.get("versions", {}).items():
        if report["role"] not in ROLES or version in NOT_VERSIONS:
            continue
        window = report["windows"][name]
        metrics = {key: float(window[field]) for field, key in _KEYS if window[field] is not None}
        metrics[LIVE_WINDOW_S] = float(window_s)
        out[version] = metrics | _health(live.get("health"), version)
    return out


def _health(health: dict[str, Any] | None, version: str) -> dict[str, float]:
    """The health figures of ``version`` when the health report is about it."""
    if health is None or health.get("version") != version:
        return {}
    figures = {LIVE_DEGRADED: 1.0 if health["degraded"] else 0.0}
    if health.get("psi_max") is not None:
        figures[LIVE_PSI_MAX] = float(health["psi_max"])
    return figures
