"""What the run of a time-to-connect model records beyond what every run does
(``training.tracking``): the curve's grid, its metrics at each horizon under names that say
the horizon, the integrated Brier score, and a reliability diagram per horizon.

- params ``curve.kind``, ``curve.periods``, ``curve.horizons_s`` (comma-separated);
- metrics ``test_model_at_<h>s_<metric>`` (``roc_auc``, ``pr_auc``, ``brier``, ``log_loss``,
  ``ece`` against "connected within h s"), ``test_model_integrated_brier`` and
  ``test_model_mean_log_loss``;
- artifacts ``curve_metrics.json`` (``training.curve.curve_metrics``) and
  ``plots/reliability_at_<h>s.png``: the curve at h against the heuristic's probability
  carried to h by the constant hazard (what the service assumes of a one-window one).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from models.connect_curve import ConnectCurveModel, carried_curve
from training.curve import labels_at
from training.evaluate import METRIC_NAMES, plot_reliability
from training.train_curve import CurveTrainResult

SUMMARY: Final = ("integrated_brier", "mean_log_loss")
"""The curve's figures over all its horizons, logged as ``test_model_<name>``."""
CURVE_METRICS_FILE: Final = "curve_metrics.json"


def at_horizon(horizon_s: float) -> str:
    """The part of a metric or file name that says the horizon: ``at_5s``, ``at_4.875s``."""
    return f"at_{horizon_s:g}s"


def curve_params(model: ConnectCurveModel) -> dict[str, Any]:
    return {
        "curve.kind": model.kind.value,
        "curve.periods": len(model.grid),
        "curve.horizons_s": ",".join(f"{h:g}" for h in model.grid.horizons_s),
    }


def curve_run_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The run metrics of :func:`training.curve.curve_metrics`' output (finite values)."""
    out = {f"test_model_{name}": float(metrics[name]) for name in SUMMARY}
    for row in metrics["per_horizon"]:
        for name in METRIC_NAMES:
            out[f"test_model_{at_horizon(row['horizon_s'])}_{name}"] = float(row[name])
    return {key: value for key, value in out.items() if math.isfinite(value)}


def curve_summary(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The figures over all horizons (a version tag)."""
    return {name: round(float(metrics[name]), 6) for name in SUMMARY}


def plot_horizons(folder: Path, result: CurveTrainResult) -> list[Path]:
    """One reliability diagram per horizon of the test slice's curve (module docstring)."""
    test, grid = result.split.test, result.model.grid
    labels = labels_at(test.wait_s, grid)
    heuristic = carried_curve(result.test_probability["heuristic"], grid.horizon_s, grid)
    return [
        plot_reliability(
            folder / f"reliability_{at_horizon(h)}.png",
            labels[:, k],
            test.w,
            {"model": result.curve.test_curve[:, k], "heuristic, constant hazard": heuristic[:, k]},
            rows=f"connect within {h:g} s, test slice",
        )
        for k, h in enumerate(grid.horizons_s)
    ]
