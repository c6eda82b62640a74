"""Live metrics of settled predictions, per version, over rolling windows.

The prediction log (``service.prediction_log``) hands over each settled prediction: a
probability ``p``, an outcome ``y`` (1: the user connected within the scorer's horizon) and a
weight ``w`` (how many scored users it stands for: 1 unless the tick was sampled). They are
summed into **time buckets** (``bucket_s``, by the time of the prediction), one aggregate per
version label and bucket:

- exact sums: ``n`` (predictions), ``Σw``, ``Σw·y``, ``Σw·p``, ``Σw·logloss`` (``p`` clipped
  to ``[1e-15, 1 - 1e-15]``, as scikit-learn's ``log_loss`` did) and ``Σw·(p - y)²``;
- a fine histogram of the predictions split by outcome: ``N_FINE`` bins of width 0.1 in
  ``logit(p)`` over ``[-12, 12]`` (``p`` from 6e-6 to 1 - 6e-6) plus one bin at each end,
  holding per bin the weight of positives, of negatives, and ``Σw·p``. Bins of equal logit
  width are fine where rare-event scores lie (near 0) and where confident ones lie (near 1).

A **window** (e.g. ``1h``) is the sum of the last ``ceil(window / bucket_s)`` buckets, the
current one included; older buckets than the longest window are dropped, and a version with
no bucket left is forgotten. Memory and saved state are bounded regardless of uptime: at
most ``ceil(longest window / bucket_s)`` buckets per version.

From a window's sums:

- ``log_loss = Σw·logloss / Σw`` and ``brier = Σw·(p - y)² / Σw``: **exact** (the same as an
  offline evaluation of the same pairs and weights, to float rounding);
- ``base_rate = Σw·y / Σw``, ``mean_prediction = Σw·p / Σw``: exact;
- ``auc`` (ROC AUC) from the histogram: pairs in different bins are ordered by their bins,
  pairs within a bin count half (as ties). ``None`` when the window holds one class only;
- the **reliability curve** and ``ece``: the fine bins are merged along the sorted
  predictions into ``ECE_BINS`` (15) bins of about equal weight (as the training's offline
  ECE does, ``training/evaluate.py``); per bin the mean prediction, the observed rate and the
  weight; ``ece = Σ_bins weight · |mean prediction - observed rate| / Σw``. A fine bin is
  never split, so a bin may hold more than its share.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from service.packed import pack, unpack

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.intp]

LOG_LOSS_EPS: Final = 1e-15
"""Probabilities are clipped to ``[LOG_LOSS_EPS, 1 - LOG_LOSS_EPS]`` for the log loss."""
LOGIT_LOW: Final = -12.0
LOGIT_STEP: Final = 0.1
N_INNER: Final = 240
"""Inner fine bins: ``[LOGIT_LOW + k * LOGIT_STEP, LOGIT_LOW + (k + 1) * LOGIT_STEP)`` in logit."""
N_FINE: Final = N_INNER + 2
"""Fine bins: one below ``LOGIT_LOW`` (p = 0 included), the inner ones, one above (p = 1)."""
ECE_BINS: Final = 15


def fine_bins(probability: Floats) -> Ints:
    """The fine histogram bin of each probability (in [0, 1])."""
    with np.errstate(divide="ignore"):
        logit = np.log(probability) - np.log1p(-probability)
    position = np.floor((logit - LOGIT_LOW) / LOGIT_STEP)
    # fmax / fmin: infinities to the end bins, and NaN (not a probability) to the first
    bins: Ints = (np.fmin(np.fmax(position, -1.0), float(N_INNER)) + 1).astype(np.intp)
    return bins


def window_name(seconds: float) -> str:
    """``3600`` -> ``"1h"``, ``300`` -> ``"5m"``, ``90`` -> ``"90s"``."""
    if seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"


@dataclass(frozen=True, slots=True)
class ReliabilityBin:
    mean_prediction: float
    observed_rate: float
    weight: float
    """Users the bin stands for (its number of predictions when no tick was sampled)."""

    def to_dict(self) -> dict[str, float]:
        return {
            "mean_prediction": self.mean_prediction,
            "observed_rate": self.observed_rate,
            "weight": self.weight,
        }


@dataclass(frozen=True, slots=True)
class WindowMetrics:
    """A window's metrics; ``None`` where nothing settled (``auc``: one class only)."""

    n: int
    """Settled predictions in the window (the sample, when ticks were sampled)."""
    weight: float
    """The users they stand for (``n`` when no tick was sampled)."""
    log_loss: float | None
    brier: float | None
    ece: float | None
    auc: float | None
    base_rate: float | None
    mean_prediction: float | None
    reliability: list[ReliabilityBin]

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "weight": self.weight,
            "log_loss": self.log_loss,
            "brier": self.brier,
            "ece": self.ece,
            "auc": self.auc,
            "base_rate": self.base_rate,
            "mean_prediction": self.mean_prediction,
            "reliability": [b.to_dict() for b in self.reliability],
        }


def _zeros() -> Floats:
    return np.zeros(N_FINE, dtype=np.float64)


@dataclass(slots=True)
class Aggregate:
    """Sums over settled predictions (one bucket, or a window of them)."""

    n: int = 0
    weight: float = 0.0
    positives: float = 0.0
    prediction_sum: float = 0.0
    log_loss_sum: float = 0.0
    squared_error_sum: float = 0.0
    pos: Floats = field(default_factory=_zeros)
    """Per fine bin, the weight of the predictions followed by a connect."""
    neg: Floats = field(default_factory=_zeros)
    p_sum: Floats = field(default_factory=_zeros)
    """Per fine bin, ``Σw·p``."""
    _saved: dict[str, Any] | None = field(default=None, init=False, repr=False, compare=False)
    """``to_dict``'s last answer, until :meth:`add` or :meth:`merge` changes the sums: a
    closed bucket is packed once, not at every save of the state."""

    def add(self, probability: Floats, outcome: Bools, weight: float) -> None:
        """Predictions (in [0, 1]) and their outcomes, each standing for ``weight`` users."""
        if len(probability) == 0:
            return
        self._saved = None
        clipped = np.minimum(np.maximum(probability, LOG_LOSS_EPS), 1.0 - LOG_LOSS_EPS)
        losses = np.where(outcome, -np.log(clipped), -np.log1p(-clipped))
        error = probability - outcome
        bins = fine_bins(probability)
        by_outcome = np.bincount(bins + N_FINE * outcome, minlength=2 * N_FINE)
        self.n += len(probability)
        self.weight += weight * len(probability)
        self.positives += weight * float(by_outcome[N_FINE:].sum())
        self.prediction_sum += weight * float(probability.sum())
        self.log_loss_sum += weight * float(losses.sum())
        self.squared_error_sum += weight * float(np.dot(error, error))
        self.neg += weight * by_outcome[:N_FINE]
        self.pos += weight * by_outcome[N_FINE:]
        self.p_sum += weight * np.bincount(bins, weights=probability, minlength=N_FINE)

    def merge(self, other: Aggregate) -> None:
        self._saved = None
        self.n += other.n
        self.weight += other.weight
        self.positives += other.positives
        self.prediction_sum += other.prediction_sum
        self.log_loss_sum += other.log_loss_sum
        self.squared_error_sum += other.squared_error_sum
        self.pos += other.pos
        self.neg += other.neg
        self.p_sum += other.p_sum

    @classmethod
    def total(cls, parts: Iterable[Aggregate]) -> Aggregate:
        whole = cls()
        for part in parts:
            whole.merge(part)
        return whole

    def metrics(self) -> WindowMetrics:
        """The metrics of these sums (see the module doc)."""
        w = self.weight
        if self.n == 0 or not w > 0:
            return WindowMetrics(self.n, w, None, None, None, None, None, None, [])
        ece, reliability = self._reliability()
        return WindowMetrics(
            n=self.n,
            weight=w,
            log_loss=self.log_loss_sum / w,
            brier=self.squared_error_sum / w,
            ece=ece,
            auc=self._auc(),
            base_rate=self.positives / w,
            mean_prediction=self.prediction_sum / w,
            reliability=reliability,
        )

    def _auc(self) -> float | None:
        positives, negatives = float(self.pos.sum()), float(self.neg.sum())
        if not (positives > 0 and negatives > 0):
            return None
        below = np.cumsum(self.neg) - self.neg
        ordered = float(np.dot(self.pos, below + 0.5 * self.neg))
        return ordered / (positives * negatives)

    def _reliability(self) -> tuple[float, list[ReliabilityBin]]:
        weights = self.pos + self.neg
        total = float(weights.sum())
        centre = np.cumsum(weights) - weights / 2.0
        group = np.minimum((centre / total * ECE_BINS).astype(np.intp), ECE_BINS - 1)
        in_use = weights > 0
        group, weights = group[in_use], weights[in_use]
        w = np.bincount(group, weights=weights, minlength=ECE_BINS)
        p = np.bincount(group, weights=self.p_sum[in_use], minlength=ECE_BINS)
        y = np.bincount(group, weights=self.pos[in_use], minlength=ECE_BINS)
        bins = [
            ReliabilityBin(float(p[g] / w[g]), float(y[g] / w[g]), float(w[g]))
            for g in range(ECE_BINS)
            if w[g] > 0
        ]
        ece = sum(b.weight * abs(b.mean_prediction - b.observed_rate) for b in bins) / total
        return ece, bins

    # -- state -----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Sums as JSON numbers (exact); the histogram's non-empty bins packed."""
        if self._saved is None:
            self._saved = self._packed()
        return dict(self._saved)

    def _packed(self) -> dict[str, Any]:
        used = np.flatnonzero((self.pos > 0) | (self.neg > 0) | (self.p_sum > 0))
        return {
            "n": self.n,
            "weight": self.weight,
            "positives": self.positives,
            "prediction_sum": self.prediction_sum,
            "log_loss_sum": self.log_loss_sum,
            "squared_error_sum": self.squared_error_sum,
            "bins": pack(used, "<u2"),
            "pos": pack(self.pos[used], "<f8"),
            "neg": pack(self.neg[used], "<f8"),
            "p_sum": pack(self.p_sum[used], "<f8"),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Aggregate:
        n = data["n"]
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise ValueError(f"a live metrics bucket's n must be an integer >= 0, not {n!r}")
        sums = [
            float(data[k])
            for k in (
                "weight",
                "positives",
                "prediction_sum",
                "log_loss_sum",
                "squared_error_sum",
            )
        ]
        if not all(math.isfinite(s) and s >= 0 for s in sums):
            raise ValueError("a live metrics bucket's sums must be finite numbers >= 0")
        used = unpack(data["bins"], "<u2", "a live metrics bucket's bins").astype(np.intp)
        if len(used) and (used.max() >= N_FINE or np.any(np.diff(used) <= 0)):
            raise ValueError(f"a live metrics bucket's bins must be increasing and < {N_FINE}")
        arrays = []
        for name in ("pos", "neg", "p_sum"):
            values = unpack(data[name], "<f8", f"a live metrics bucket's {name}")
            if values.shape != used.shape or not (
                np.isfinite(values).all() and values.min(initial=0) >= 0
            ):
                raise ValueError(
                    f"a live metrics bucket's {name} must hold {len(used)} finite numbers >= 0"
                )
            full = _zeros()
            full[used] = values
            arrays.append(full)
        weight, positives, prediction_sum, log_loss_sum, squared_error_sum = sums
        pos, neg, p_sum = arrays
        return cls(
            n, weight, positives, prediction_sum, log_loss_sum, squared_error_sum, pos, neg, p_sum
        )


class LiveMetrics:
    """Per version label, buckets of settled predictions; windows are their sums."""

    def __init__(self, *, bucket_s: float, windows_s: Sequence[float]) -> None:
        if not (math.isfinite(bucket_s) and bucket_s > 0):
            raise ValueError(f"bucket_s must be a finite number > 0, not {bucket_s}")
        if not windows_s or not all(math.isfinite(w) and w > 0 for w in windows_s):
            raise ValueError(f"windows_s must be finite numbers > 0, not {list(windows_s)}")
        self.bucket_s = float(bucket_s)
        self.windows_s = tuple(float(w) for w in windows_s)
        self.keep = max(math.ceil(w / self.bucket_s) for w in self.windows_s)
        """Buckets kept per version: those of the longest window."""
        self._buckets: dict[str, dict[int, Aggregate]] = {}
        self._latest: int | None = None
        """The newest bucket index seen (by ``add`` or ``expire``)."""

    def versions(self) -> list[str]:
        return sorted(self._buckets)

    def bucket(self, t: float) -> int:
        return math.floor(t / self.bucket_s)

    def add(
        self, version: str, at: float, probability: Floats, outcome: Bools, weight: float
    ) -> None:
        """Settled predictions made at ``at`` by ``version``."""
        index = self.bucket(at)
        self._advance(index)
        assert self._latest is not None
        if index <= self._latest - self.keep or len(probability) == 0:
            return
        buckets = self._buckets.setdefault(version, {})
        aggregate = buckets.get(index)
        if aggregate is None:
            aggregate = buckets[index] = Aggregate()
        aggregate.add(probability, outcome, weight)

    def expire(self, now: float) -> None:
        """Drop the buckets older than the longest window at ``now``."""
        self._advance(self.bucket(now))

    def window(self, version: str, window_s: float, now: float) -> Aggregate:
        """The sums of ``version``'s last ``ceil(window_s / bucket_s)`` buckets at ``now``."""
        newest = self.bucket(now)
        oldest = newest - math.ceil(window_s / self.bucket_s)
        buckets = self._buckets.get(version, {})
        return Aggregate.total(a for i, a in buckets.items() if oldest < i <= newest)

    def report(self, now: float) -> dict[str, dict[str, WindowMetrics]]:
        """Per version label, per window name, the metrics."""
        self.expire(now)
        return {
            version: {
                window_name(w): self.window(version, w, now).metrics() for w in self.windows_s
            }
            for version in self.versions()
        }

    def _advance(self, index: int) -> None:
        if self._latest is not None and index <= self._latest:
            return
        self._latest = index
        cut = index - self.keep
        for version in list(self._buckets):
            buckets = self._buckets[version]
            for old in [i for i in buckets if i <= cut]:
                del buckets[old]
            if not buckets:
                del self._buckets[version]

    # -- state -----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "bucket_s": self.bucket_s,
            "latest": self._latest,
            "versions": {
                version: {str(i): a.to_dict() for i, a in sorted(buckets.items())}
                for version, buckets in self._buckets.items()
            },
        }

    def load(self, data: dict[str, Any]) -> None:
        """Restore ``to_dict``'s state. Saved with another bucket size, the buckets cannot be
        reused and are dropped."""
        self._buckets = {}
        self._latest = None
        if float(data["bucket_s"]) != self.bucket_s:
            return
        latest = data.get("latest")
        if latest is not None and (not isinstance(latest, int) or isinstance(latest, bool)):
            raise ValueError(f"live metrics' latest bucket must be an integer, not {latest!r}")
        versions = data["versions"]
        if not isinstance(versions, dict):
            raise ValueError("live metrics' versions must be a mapping of version to buckets")
        for version, buckets in versions.items():
            if not isinstance(buckets, dict):
                raise ValueError(f"live metrics of version {version!r} must map buckets")
            try:
                indices = [int(i) for i in buckets]
            except ValueError:
                raise ValueError(
                    f"live metrics of version {version!r}: bucket keys must be integers"
                ) from None
            self._buckets[str(version)] = {
                i: Aggregate.from_dict(b) for i, b in zip(indices, buckets.values(), strict=True)
            }
        self._latest = latest
        if latest is not None:
            self._latest = None
            self._advance(latest)
