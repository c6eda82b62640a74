"""Online calibration of scores against the connects that follow them.

The scaler treats scores as probabilities of a connect within the lead time. A trained
model is calibrated for that; the heuristic is not (on the seed workload its scores add up
to some 25 expected connects per 40 s when 1.5 happen). So the engine learns, per source
(heuristic or model) and per score band, how often a scored user actually connects within
the lead time, and uses that rate:

    calibrated(band) = (hits + prior * mean_score) / (scored + prior)

where ``scored`` counts the (tick, user) scores that fell in the band, ``hits`` those
followed by the user's connect within the lead time, and ``mean_score`` the band's mean
score (so that with no outcomes yet, a score stands as it is). Counts are forgotten
exponentially (``half_life_s``), but a band never forgets below ``EVIDENCE_FLOOR`` scores: a
busy band's rate follows a crowd within minutes, and a band scored rarely (a few users'
bursts a day) keeps what it learned instead of falling back to the raw scores between its
bursts. A tick's scores count once the lead time after it has passed. The lead time may
change (it follows the boot times): each tick's scores are judged over the lead time they
were converted to. Connects of users that no tick within the lead time scored at all
(unseen, or outside the recency cutoff) are *unforeseen*: their rate per second is the
baseline the demand adds as a Poisson term. The baseline starts from a prior
(``BASELINE_PRIOR_*``, pseudo-counts forgotten like real ones), so that its first seconds
neither ignore nor magnify what they saw.
A change of model version resets the model's bands.

State is plain data (``to_dict`` / ``load``), the scores still waiting for their lead time
to pass included, so a restored calibration carries on exactly.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from service.packed import pack, unpack

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.intp]

BASELINE_PRIOR_CONNECTS: Final = 1.0
BASELINE_PRIOR_EXPOSURE_S: Final = 300.0
"""The baseline's prior: one unforeseen connect in five minutes of exposure, counted as if
seen, and forgotten like the rest. A fresh service is cautious before its first connect and
does not take one connect in its first second for a rate of one a second; after some
minutes of exposure the prior no longer shows, and after a few half-lives it is gone."""
BAND_EDGES: Final = (
    1e-4,
    1e-3,
    3e-3,
    0.01,
    0.02,
    0.035,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.4,
    0.5,
    0.6,
    0.7,
    0.8,
    0.9,
    0.95,
)
"""Inner edges of the score bands: band 0 is [0, 1e-4), the last [0.95, 1]."""
EVIDENCE_FLOOR: Final = 100.0
"""Scores' worth of outcomes a band keeps however long ago they came (see the module doc).
Measured: without it, a ten-minute half-life let a population of 40 users, 4 of them
connecting once a day, boot 70 nodes for 27 connects (the band of the others' bursts forgot
between bursts that they never connect); with it 28, while a shift start's band still
turns over within minutes."""
N_BANDS: Final = len(BAND_EDGES) + 1
SOURCES: Final = 2  # 0: heuristic, 1: model
_EDGES: Final = np.asarray(BAND_EDGES, dtype=np.float64)
_UNSCORED: Final = -1


@dataclass(slots=True)
class _Record:
    """One tick's scores, waiting for the lead time after it to pass."""

    at: float
    window_s: float
    """The lead time the scores were about: a connect within it is a hit."""
    code_of_user: npt.NDArray[np.int8]
    """Band code (``band + N_BANDS * source``) per engine user index; -1: not scored."""
    scored: Floats
    score_sum: Floats
    hits: Floats

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "window_s": self.window_s,
            "code_of_user": pack(self.code_of_user, "<i1"),
            "scored": self.scored.tolist(),
            "score_sum": self.score_sum.tolist(),
            "hits": self.hits.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], size: int) -> _Record:
        saved = data["code_of_user"]  # packed; a list of numbers in states saved before
        codes = (
            unpack(saved, "<i1", "a pending calibration record's band codes")
            if isinstance(saved, str)
            else np.asarray(saved, dtype=np.int8)
        )
        sums = [np.asarray(data[k], dtype=np.float64) for k in ("scored", "score_sum", "hits")]
        at, window_s = float(data["at"]), float(data["window_s"])
        if any(v.shape != (size,) or not np.isfinite(v).all() for v in sums):
            raise ValueError(f"a pending calibration record must hold {size} finite numbers")
        if not (math.isfinite(at) and math.isfinite(window_s) and window_s > 0):
            raise ValueError("a pending calibration record needs a finite time and window")
        if codes.ndim != 1 or (len(codes) and (codes.min() < _UNSCORED or codes.max() >= size)):
            raise ValueError("a pending calibration record's band codes are out of range")
        return cls(at, window_s, codes, *sums)


class Calibration:
    def __init__(self, *, half_life_s: float, prior: float) -> None:
        self.half_life_s = half_life_s
        self.prior = prior
        self.scored = np.zeros(SOURCES * N_BANDS, dtype=np.float64)
        self.score_sum = np.zeros(SOURCES * N_BANDS, dtype=np.float64)
        self.hits = np.zeros(SOURCES * N_BANDS, dtype=np.float64)
        self.unforeseen = BASELINE_PRIOR_CONNECTS
        self.exposure_s = BASELINE_PRIOR_EXPOSURE_S
        self.model_version: str | None = None
        self.last_at: float | None = None
        self._pending: deque[_Record] = deque()

    # -- applying --------------------------------------------------------------------------

    def codes(self, probability: Floats, from_model: Bools) -> Ints:
        band = np.searchsorted(_EDGES, probability, side="right")
        codes: Ints = band + N_BANDS * from_model.astype(np.intp)
        return codes

    def calibrated(self, probability: Floats, from_model: Bools) -> Floats:
        """Each score replaced by its band's observed rate (see the module doc)."""
        codes = self.codes(probability, from_model)
        scored = self.scored[codes]
        mean_score = np.divide(
            self.score_sum[codes], scored, out=probability.astype(np.float64), where=scored > 0
        )
        rate: Floats = (self.hits[codes] + self.prior * mean_score) / (scored + self.prior)
        return np.clip(rate, 0.0, 1.0)

    def baseline_rate(self) -> float:
        """Unforeseen connects per second."""
        return self.unforeseen / self.exposure_s if self.exposure_s > 0 else 0.0

    def rates(self) -> dict[str, list[float]]:
        """Observed band rates per source (NaN where nothing was scored), for dashboards."""
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = self.hits / self.scored
            mean = self.score_sum / self.scored
        return {
            "band_edges": list(BAND_EDGES),
            "heuristic_rate": rate[:N_BANDS].tolist(),
            "heuristic_mean_score": mean[:N_BANDS].tolist(),
            "model_rate": rate[N_BANDS:].tolist(),
            "model_mean_score": mean[N_BANDS:].tolist(),
        }

    # -- learning --------------------------------------------------------------------------

    def record(
        self,
        now: float,
        users: Ints,
        probability: Floats,
        from_model: Bools,
        n_users: int,
        model_version: str | None,
        window_s: float,
    ) -> None:
        """A tick at ``now`` scored ``users`` (engine indices < ``n_users``), each score about
        a connect within ``window_s`` (the lead time then)."""
        self._mature(now)
        if model_version is not None and model_version != self.model_version:
            if self.model_version is not None:
                self.scored[N_BANDS:] = 0.0
                self.score_sum[N_BANDS:] = 0.0
                self.hits[N_BANDS:] = 0.0
            self.model_version = model_version
        codes = self.codes(probability, from_model)
        code_of_user = np.full(n_users, _UNSCORED, dtype=np.int8)
        code_of_user[users] = codes
        size = SOURCES * N_BANDS
        self._pending.append(
            _Record(
                at=now,
                window_s=window_s,
                code_of_user=code_of_user,
                scored=np.bincount(codes, minlength=size).astype(np.float64),
                score_sum=np.bincount(codes, weights=probability, minlength=size).astype(
                    np.float64
                ),
                hits=np.zeros(size, dtype=np.float64),
            )
        )

    def connect(self, user: int, now: float) -> None:
        """User ``user`` (engine index) connected at ``now``."""
        foreseen = False
        for record in self._pending:
            if not record.at < now <= record.at + record.window_s:
                continue
            if user < len(record.code_of_user):
                code = int(record.code_of_user[user])
                if code != _UNSCORED:
                    record.hits[code] += 1.0
                    record.code_of_user[user] = _UNSCORED  # one hit per record
                    foreseen = True
        if not foreseen:
            self.unforeseen += 1.0

    def compact(self, keep: Bools) -> None:
        """The engine dropped the user rows where ``keep`` is False (``UserTable.compact``):
        the pending scores follow the rows kept (a dropped user's pending score would stay
        counted as scored, without a hit; the engine drops only users too long unseen to
        have been scored)."""
        for record in self._pending:
            codes = record.code_of_user
            record.code_of_user = codes[keep[: len(codes)]]

    def _mature(self, now: float) -> None:
        if self.last_at is not None and now > self.last_at:
            elapsed = now - self.last_at
            keep = 0.5 ** (elapsed / self.half_life_s)
            band_keep = np.maximum(keep, EVIDENCE_FLOOR / np.maximum(self.scored, EVIDENCE_FLOOR))
            self.scored *= band_keep
            self.score_sum *= band_keep
            self.hits *= band_keep
            self.unforeseen *= keep
            self.exposure_s = self.exposure_s * keep + elapsed
        if self.last_at is None or now > self.last_at:
            self.last_at = now
        while self._pending and self._pending[0].at + self._pending[0].window_s <= now:
            record = self._pending.popleft()
            self.scored += record.scored
            self.score_sum += record.score_sum
            self.hits += record.hits

    # -- state -----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "scored": self.scored.tolist(),
            "score_sum": self.score_sum.tolist(),
            "hits": self.hits.tolist(),
            "unforeseen": self.unforeseen,
            "exposure_s": self.exposure_s,
            "model_version": self.model_version,
            "last_at": self.last_at,
            "pending": [record.to_dict() for record in self._pending],
        }

    def load(self, data: dict[str, Any]) -> None:
        size = SOURCES * N_BANDS
        for name in ("scored", "score_sum", "hits"):
            values = np.asarray(data[name], dtype=np.float64)
            if values.shape != (size,) or not np.isfinite(values).all():
                raise ValueError(f"calibration {name} must be {size} finite numbers")
            setattr(self, name, values)
        self.unforeseen = float(data["unforeseen"])
        self.exposure_s = float(data["exposure_s"])
        if not (math.isfinite(self.unforeseen) and math.isfinite(self.exposure_s)):
            raise ValueError("calibration counters must be finite")
        self.model_version = data.get("model_version")
        last_at = data.get("last_at")
        self.last_at = None if last_at is None else float(last_at)
        self._pending.clear()
        self._pending.extend(_Record.from_dict(r, size) for r in data.get("pending", []))
