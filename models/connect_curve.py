"""A time-to-connect model: for each user, the probability of a connect within t, for every
t up to the label horizon, from one model.

The curve lives on a grid of horizons ``t_1 < ... < t_K = H`` (:class:`CurveGrid`): the
``K`` periods ``(t_{k-1}, t_k]`` split the horizon evenly. ``F_k`` is the probability of
a connect within ``t_k``; between grid points the curve is linear (``F_0 = 0`` at t = 0),
and beyond H it assumes a constant hazard (the rule the service applies to a one-window
classifier's probability, ``service.engine``).

Two ways to get ``F`` from gradient-boosted trees (:class:`CurveKind`):

- **hazard**: a discrete-time hazard model. One classifier sees one row per user and
  period at risk (person-period rows: the period's start as an extra feature) and gives
  ``h_k``, the probability of a connect in period k given none before;
  ``F_k = 1 - prod_{j<=k} (1 - h_j)``, non-decreasing by construction;
- **per_horizon**: one classifier per horizon, each on the label "connects within t_k".

Either way each ``F_k`` is then calibrated on the validation slice (Platt or isotonic, as
the one-window classifier, ``models.classifier``) and the calibrated curve is made
non-decreasing by a running maximum over the horizons.

Pure: features in, curves out; fitting is in ``training.curve``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from models.classifier import Calibration, feature_matrix

Floats = npt.NDArray[np.float64]

DEFAULT_CURVE_PERIODS: Final = 8
"""Periods the horizon is split into: with the default 40 s horizon, 5 s apart."""
PERIOD_FEATURE: Final = "period_start_s"
"""The hazard model's extra feature: seconds from the cutoff to the period's start."""


class CurveKind(StrEnum):
    HAZARD = "hazard"
    PER_HORIZON = "per_horizon"


@dataclass(frozen=True, slots=True)
class CurveGrid:
    """Increasing horizons (seconds) the curve is given at; the last is the label horizon."""

    horizons_s: tuple[float, ...]

    def __post_init__(self) -> None:
        h = self.horizons_s
        if not h or not all(math.isfinite(x) and x > 0 for x in h):
            raise ValueError(f"a curve needs finite positive horizons, not {h}")
        if any(b <= a for a, b in itertools.pairwise(h)):
            raise ValueError(f"the curve's horizons must increase: {h}")

    @classmethod
    def even(cls, horizon_s: float, periods: int = DEFAULT_CURVE_PERIODS) -> CurveGrid:
        """``periods`` equal periods up to ``horizon_s``."""
        if periods < 1:
            raise ValueError(f"a curve needs at least one period, not {periods}")
        return cls(tuple(horizon_s * (k + 1) / periods for k in range(periods)))

    @property
    def horizon_s(self) -> float:
        return self.horizons_s[-1]

    @property
    def starts_s(self) -> tuple[float, ...]:
        """Each period's start: 0, then the previous horizon."""
        return (0.0, *self.horizons_s[:-1])

    def __len__(self) -> int:
        return len(self.horizons_s)


def curve_from_hazards(hazards: Floats) -> Floats:
    """``F_k = 1 - prod_{j<=k} (1 - h_j)`` row by row (hazards clipped to [0, 1])."""
    survival: Floats = np.cumprod(1.0 - np.clip(hazards, 0.0, 1.0), axis=1, dtype=np.float64)
    curve: Floats = 1.0 - survival
    return curve


def non_decreasing(curve: Floats) -> Floats:
    """The running maximum over the horizons of a curve clipped to [0, 1]."""
    out: Floats = np.maximum.accumulate(np.clip(curve, 0.0, 1.0), axis=1)
    return out


def constant_hazard(probability: Floats, horizon_s: float, t_s: float) -> Floats:
    """A probability of a connect within ``horizon_s`` carried to ``t_s`` by a constant
    hazard: ``1 - (1 - p)^(t / H)``."""
    if not (horizon_s > 0) or t_s == horizon_s:
        return probability
    out: Floats = 1.0 - np.power(1.0 - probability, t_s / horizon_s)
    return out


def carried_curve(probability: Floats, horizon_s: float, grid: CurveGrid) -> Floats:
    """The curve a one-window probability implies under a constant hazard: what the service
    assumes of a classifier's (or the heuristic's) probability at other times."""
    return np.column_stack([constant_hazard(probability, horizon_s, t) for t in grid.horizons_s])


def within(curve: Floats, grid: CurveGrid, t_s: float) -> Floats:
    """P(connect within ``t_s``) for every row: linear between the grid's horizons from 0 at
    t = 0, and beyond the last by a constant hazard (``1 - (1 - F_K)^(t / H)``)."""
    if not t_s > 0:
        return np.zeros(len(curve))
    if t_s >= grid.horizon_s:
        return constant_hazard(curve[:, -1], grid.horizon_s, t_s)
    xs = np.asarray((0.0, *grid.horizons_s))
    k = int(np.searchsorted(xs, t_s, side="right")) - 1
    left = np.zeros(len(curve)) if k == 0 else curve[:, k - 1]
    share = (t_s - xs[k]) / (xs[k + 1] - xs[k])
    interpolated: Floats = left + share * (curve[:, k] - left)
    return interpolated


def regrid(curve: Floats, grid: CurveGrid, to: CurveGrid) -> Floats:
    """A curve given on ``grid`` read at the horizons of ``to`` (:func:`within`)."""
    if to == grid:
        return curve
    return np.column_stack([within(curve, grid, t) for t in to.horizons_s])


def median_wait(curve: Floats, grid: CurveGrid) -> Floats:
    """Seconds until each row's curve reaches 0.5 (linear between horizons); infinity when it
    stays below 0.5 within the horizon."""
    xs = np.asarray((0.0, *grid.horizons_s))
    full = np.hstack([np.zeros((len(curve), 1)), curve])
    reached = full >= 0.5
    first = np.argmax(reached, axis=1)
    out = np.full(len(curve), np.inf)
    hit = reached.any(axis=1)
    rows = np.flatnonzero(hit)
    k = first[rows]
    lo, hi = full[rows, k - 1], full[rows, k]
    share = np.where(hi > lo, (0.5 - lo) / np.where(hi > lo, hi - lo, 1.0), 1.0)
    out[rows] = xs[k - 1] + share * (xs[k] - xs[k - 1])
    return out


@dataclass(frozen=True)
class ConnectCurveModel:
    """Boosters and per-horizon calibrations: ``curve(X)`` is the calibrated, non-decreasing
    ``(rows, K)`` curve."""

    kind: CurveKind
    grid: CurveGrid
    boosters: tuple[Any, ...]
    """One (hazard) or one per horizon (per_horizon): anything with ``predict(X)``."""
    calibrations: tuple[Calibration, ...]
    feature_names: tuple[str, ...]
    data: Mapping[str, Any] = field(default_factory=dict)
    """How the training rows were made (the dataset spec, the split), as the classifier's."""

    def __post_init__(self) -> None:
        wanted = 1 if self.kind is CurveKind.HAZARD else len(self.grid)
        if len(self.boosters) != wanted:
            raise ValueError(f"a {self.kind} curve needs {wanted} booster(s)")
        if len(self.calibrations) != len(self.grid):
            raise ValueError("one calibration per horizon")

    def raw_curve(self, X: Floats) -> Floats:
        """The uncalibrated curve (the calibrations' input)."""
        if not len(X):
            return np.zeros((0, len(self.grid)))
        if self.kind is CurveKind.HAZARD:
            # every period's rows in one pass of the booster: its cost per call, not per
            # row, is what a tick of a few hundred users pays for
            periods = np.vstack([with_period(X, start) for start in self.grid.starts_s])
            hazards = _predict(self.boosters[0], periods).reshape(len(self.grid), len(X)).T
            return curve_from_hazards(hazards)
        return non_decreasing(np.column_stack([_predict(b, X) for b in self.boosters]))

    def curve(self, X: Floats) -> Floats:
        raw = self.raw_curve(X)
        return calibrate(raw, self.calibrations)

    @property
    def horizon_s(self) -> float:
        return self.grid.horizon_s

    def predict_proba(self, features: Floats) -> Floats:
        """The curve at the horizon: the classifier's question, answered by the curve."""
        matrix = feature_matrix(features, self.feature_names)
        if not len(matrix):
            return np.empty(0, dtype=np.float64)
        out: Floats = self.curve(matrix)[:, -1].copy()
        return out


def calibrate(raw: Floats, calibrations: Sequence[Calibration]) -> Floats:
    """Each horizon's calibration applied to its column, then made non-decreasing."""
    return non_decreasing(np.column_stack([c.apply(raw[:, k]) for k, c in enumerate(calibrations)]))


def with_period(X: Floats, start_s: float) -> Floats:
    """``X`` with the period-start column the hazard model reads."""
    return np.hstack([X, np.full((len(X), 1), start_s)])


def _predict(booster: Any, X: Floats) -> Floats:
    out: Floats = np.asarray(booster.predict(X, num_threads=1), dtype=np.float64)
    return out
