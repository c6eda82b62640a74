"""How long sessions last, learned online: when will a busy node be free again?

A node serving a user becomes idle when the user disconnects, and an idle node serves the
next connect at once, without a boot. So the nodes that will be freed within the lead time
are supply the scaler can count on. This keeps the empirical distribution of completed
session lengths (a histogram of ``bin_s`` bins up to ``max_s``, older sessions forgotten
exponentially) and answers, for sessions of given ages, the probability that each ends
within a window: ``(S(a) - S(a + w)) / S(a)`` with ``S`` the survival function, estimated
by Kaplan-Meier with the sessions still going counted as lasting at least their age (the
sessions seen to end first are the short ones; without the long ones still going, a fresh
service would count on every busy node being freed soon).

Until ``min_sessions`` have been seen it says 0 (no free is counted on): the scaler then
sizes as if no node would be freed, the cautious side.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]


class SessionLengths:
    def __init__(
        self,
        *,
        bin_s: float = 10.0,
        max_s: float = 6 * 3600.0,
        half_life_sessions: float = 500.0,
        min_sessions: int = 20,
    ) -> None:
        self.bin_s = bin_s
        self.bins = math.ceil(max_s / bin_s)
        self.decay = 0.5 ** (1.0 / half_life_sessions)
        self.min_sessions = min_sessions
        self.seen = 0
        self._counts = np.zeros(self.bins + 1, dtype=np.float64)  # last bin: >= max_s

    def add(self, length_s: float) -> None:
        """Record one completed session."""
        if not math.isfinite(length_s) or length_s < 0:
            return
        self._counts *= self.decay
        self._counts[min(int(length_s // self.bin_s), self.bins)] += 1.0
        self.seen += 1

    def end_probability(self, ages_s: Floats, within_s: float | Floats) -> Floats:
        """P(a session of age ``a`` ends within ``within_s`` more seconds), per age, for the
        sessions going on now (their ages also count: each lasts at least that long): one
        value per age, or ``(ages, len(within_s))`` for an array of times."""
        ages = np.maximum(np.asarray(ages_s, dtype=np.float64), 0.0)
        within = np.asarray(within_s, dtype=np.float64)
        shape = (len(ages), *within.shape)
        if self.seen < self.min_sessions or not len(ages):
            return np.zeros(shape, dtype=np.float64)
        survival = self._survival(ages)
        now = np.minimum((ages // self.bin_s).astype(np.int64), self.bins)
        ends = ages[:, None] + within[None, :] if within.ndim else ages + within
        later = np.minimum((ends // self.bin_s).astype(np.int64), self.bins)
        alive = survival[now].reshape(len(ages), *([1] * within.ndim))
        still = survival[later]
        probability = np.where(alive > 0, (alive - still) / np.where(alive > 0, alive, 1.0), 0.0)
        clipped: Floats = np.clip(probability, 0.0, 1.0)
        return clipped

    def _survival(self, ongoing_s: Floats) -> Floats:
        """``survival[k]``: the share of sessions at least ``k`` bins long (Kaplan-Meier),
        the ``ongoing_s`` sessions counted as lasting at least their age so far: without
        them, the sessions seen to end early on are the short ones, and the ends of the long
        ones still going would be counted on far too soon."""
        bins = self.bins + 1
        censored = np.bincount(
            np.minimum((ongoing_s // self.bin_s).astype(np.int64), self.bins), minlength=bins
        ).astype(np.float64)
        ended = self._counts
        # at risk in bin k: sessions ended in bin k or later, and those still going there
        at_risk = np.cumsum((ended + censored)[::-1])[::-1]
        hazard = np.divide(ended, at_risk, out=np.zeros(bins), where=at_risk > 0)
        survival: Floats = np.concatenate(([1.0], np.cumprod(1.0 - hazard)))
        return survival

    def to_dict(self) -> dict[str, Any]:
        return {"bin_s": self.bin_s, "seen": self.seen, "counts": self._counts.tolist()}

    def load(self, data: dict[str, Any]) -> None:
        counts = np.asarray(data.get("counts", []), dtype=np.float64)
        if float(data.get("bin_s", self.bin_s)) != self.bin_s or len(counts) != len(self._counts):
            return  # another binning: start afresh rather than misread it
        self._counts = counts
        self.seen = int(data.get("seen", 0))
