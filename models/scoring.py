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

from models.connect_curve import CurveGrid, carried_curve
from models.reference import FeatureReference

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]


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

    def __len__(self) -> int:
        return len(self.probability)

    def source(self, row: int) -> Source:
        return Source.MODEL if self.from_model[row] else Source.HEURISTIC

    def curve(self, grid: CurveGrid | None = None) -> tuple[CurveGrid, Floats]:
        """Each row's probability of a connect within each horizon of ``grid`` (default: the
        horizon in ``DEFAULT_CURVE_PERIODS`` even periods), carried from the one-window
        probability by a constant hazard (``models.connect_curve.carried_curve``): the
        scorers served give one probability per user, and this is what the service assumes
        of it at other times."""
        grid = grid or CurveGrid.even(self.horizon_s)
        return grid, carried_curve(self.probability, self.horizon_s, grid)


class Scorer(Protocol):
    """Scores users from their features; never raises for well-formed input."""

    @property
    def horizon_s(self) -> float:
        """The lead time the probabilities are about (connect within this many seconds)."""
        ...

    def score(self, features: Floats) -> Scores:
        """Probabilities in [0, 1] for each row of ``features``; ``features`` is not changed."""
        ...
