"""The original service's rule, as a scorer like any other.

The seed service scored a user by the recency of its activity: a staged score of 0.9,
0.6 or 0.3 for activity within 30 s, 2 min or 5 min (0 when older), decayed over 5 min
(``exp(-age / 300 s)``), and boosted by 1.5 for a connected user. As a probability:

    p = min(1, stage(age) * exp(-age / 300) * (1.5 if connected else 1))

It knows nothing of the horizon; it is the fallback whenever the model cannot answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from features.definitions import FEATURE_NAMES
from models.defaults import DEFAULT_HORIZON_S
from models.scoring import Floats, Scores

STAGES: Final = ((30.0, 0.9), (120.0, 0.6), (300.0, 0.3))
"""(activity within seconds, score); older activity scores 0."""
DECAY_S: Final = 300.0
CONNECTED_BOOST: Final = 1.5

_SINCE: Final = FEATURE_NAMES.index("since_activity_s")
_CONNECTED: Final = FEATURE_NAMES.index("connected")


def stage(age_s: Floats) -> Floats:
    """The staged score for activity ``age_s`` seconds ago."""
    score = np.zeros_like(age_s)
    for within, value in reversed(STAGES):
        score = np.where(age_s <= within, value, score)
    return score


@dataclass(frozen=True, slots=True)
class HeuristicScorer:
    horizon_s: float = DEFAULT_HORIZON_S

    def score(self, features: Floats) -> Scores:
        age = np.nan_to_num(features[:, _SINCE], nan=np.inf, posinf=np.inf)
        age = np.maximum(age, 0.0)
        boost = np.where(features[:, _CONNECTED] > 0, CONNECTED_BOOST, 1.0)
        probability = np.minimum(1.0, stage(age) * np.exp(-age / DECAY_S) * boost)
        return Scores(
            probability=probability.astype(np.float64),
            from_model=np.zeros(len(features), dtype=bool),
            model_version=None,
            horizon_s=self.horizon_s,
        )
