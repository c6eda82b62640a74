"""What every scorer returns, and the contract it meets.

A scorer maps the feature matrix of some users (columns ``features.definitions.
FEATURE_NAMES``) to the probability that each connects within the horizon, and says
where each probability came from: the trained ``model`` or the ``heuristic``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import numpy as np
import numpy.typing as npt

from models.connect_curve import CurveGrid, carried_curve, constant_hazard, within
from models.reference import FeatureReference

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]


def clean_probabilities(values: Floats) -> Floats:
    """A scorer's probabilities as float64 in [0, 1] (NaN counts as 0, infinities clip)."""
    probability: Floats = np.clip(
        np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0, posinf=1.0, neginf=0.0),
        0.0,
        1.0,
    )
    return probability


class Source(StrEnum):
    MODEL = "model"
    HEURISTIC = "heuristic"


@dataclass(frozen=True, slots=True)
class Scores:
    """Probabilities for the rows of one feature matrix."""

    probability: Floats
    from_model: Bools
    """True where the model produced the probability, False where the heuristic did."""
    model_version: str | None
    """The registered model version behind the model rows (None: no model involved)."""
    horizon_s: float
    reference: FeatureReference | None = None
    """The training reference of the model behind the model rows (None: none, or no model
    involved), for measuring how far the features scored drift from it."""
    curves: tuple[CurveGrid, Floats] | None = None
    """A grid and, ``(rows, len(grid))``, each row's probability of a connect within each of
    its horizons, when a time-to-connect model scored (rows it did not score carry their
    probability by a constant hazard); None when no scorer gave a curve."""

    def __len__(self) -> int:
        return len(self.probability)

    def source(self, row: int) -> Source:
        return Source.MODEL if self.from_model[row] else Source.HEURISTIC

    def curve(self) -> tuple[CurveGrid, Floats]:
        """Each row's probability of a connect within each horizon: the scorer's curve when
        it gave one, else the probability carried by a constant hazard
        (``models.connect_curve.carried_curve``) over the horizon in
        ``DEFAULT_CURVE_PERIODS`` even periods: what the service assumes of it."""
        if self.curves is not None:
            return self.curves
        grid = CurveGrid.even(self.horizon_s)
        return grid, carried_curve(clean_probabilities(self.probability), self.horizon_s, grid)

    def within(self, t_s: float) -> Floats:
        """Each row's probability of a connect within ``t_s`` (the lead time): read off the
        curve when there is one, else carried by a constant hazard."""
        if self.curves is not None:
            grid, values = self.curves
            return within(values, grid, t_s)
        return constant_hazard(clean_probabilities(self.probability), self.horizon_s, t_s)


class Scorer(Protocol):
    """Scores users from their features; never raises for well-formed input."""

    @property
    def horizon_s(self) -> float:
        """The lead time the probabilities are about (connect within this many seconds)."""
        ...

    def score(self, features: Floats) -> Scores:
        """Probabilities in [0, 1] for each row of ``features``; ``features`` is not changed."""
        ...
