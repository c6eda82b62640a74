"""Live evidence per model version: what the live service logs to each version's MLflow run.

``evidence(live, window_s)`` maps ``Engine.live(now)`` to, per version that is the
``champion`` or the ``challenger`` and is a registered model version (not the heuristic,
nor the label of an unversioned model), its figures over the window ``window_s`` under the
keys of ``models.live_evidence`` (``live_n``, ``live_log_loss``, ``live_brier``,
``live_ece``, ``live_auc``, ``live_base_rate``, ``live_window_s``). Figures the window does
not have (nothing settled; an AUC of one class) are left out; ``live_n`` is always there,
0 when nothing settled in the window. A version the log holds nothing about is left out.
Pure: the live shell calls it and logs the result (``service.evidence_log``).
"""

from __future__ import annotations

from typing import Any, Final

from models.live_evidence import (
    LIVE_AUC,
    LIVE_BASE_RATE,
    LIVE_BRIER,
    LIVE_ECE,
    LIVE_LOG_LOSS,
    LIVE_N,
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
        out[version] = metrics
    return out
