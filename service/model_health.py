"""Whether the champion still fits the traffic: feature drift and a rise of its live loss.

A pure core (no I/O, no clock: ``now`` is passed in). Two signals, both reset when the
champion changes (:meth:`ModelHealth.set_reference`):

**Feature drift.** The feature rows the service scores (``observe_features``) are counted
in the training reference's bins (``models.reference``) per time bucket of ``bucket_s``;
the buckets of the last ``window_s`` add up to the observed counts, and each feature's
PSI against its training shares is reported. Bounded: at most ``window_s / bucket_s + 1``
buckets of ``features x bins`` counts, whatever the traffic. A feature drifts when its PSI
exceeds ``psi`` (default 0.25, the usual "drifted" reading), judged once ``min_rows`` rows
are in the window. Two kinds of features are reported and never judged, nor counted in
``psi_max`` (:data:`NOT_JUDGED`): the calendar (``features.definitions.CALENDAR_FEATURES``:
over an hour of traffic they take the hour's value, whatever the users do) and the length
of the users' history (``HISTORY_LENGTH_FEATURES``: counts since first seen differ between
a training window and a service that has run for longer, whoever the users are).

**A rise of the live loss.** Settled predictions (``observe_outcomes``: the probability
served and whether the user connected) are summed into batches of at least ``batch_size``
predictions; each batch feeds one value to an ADWIN change detector (``river.drift.ADWIN``,
adaptive windowing: it keeps the longest recent window whose two halves' means do not
differ significantly, and drops the older part when they do). One value per batch keeps it
cheap at any traffic: 100k settled predictions in a tick make one update, not 100k.

The value is the batch's log loss *relative to the loss the model expects of itself*: the
sum of the log losses over the sum of the binary entropies of the probabilities served
(about 1 for a calibrated model, capped at :data:`RATIO_CAP`). The raw log loss moves with
the base rate (fewer connects at night, a lower loss), which ADWIN would report as changes
of the model; the ratio does not, while a model that has stopped fitting (miscalibrated,
overconfident, ranking worse) raises it. It also keeps the values near ADWIN's scale (its
bound assumes values in [0, 1]; raw log losses of rare events are a thousandth of that,
and changes of them would take thousands of batches to be significant). A detected change
is an increase when the batches ADWIN kept have a higher mean than those it dropped; a later
detected decrease clears it. ``after`` is the mean of the batches kept, which may still
hold some from before the change: the size of a rise is understated, not overstated.

Degraded when the features drift or a rise of the loss was detected (with at least
``min_settled`` predictions settled since the champion changed).

**Why river's ADWIN and not evidently.** evidently compares a reference and a current
*data set* (pandas frames of rows) in batch reports: the service would have to keep the
window's raw rows (100k users a tick) and rebuild reports. ADWIN is a streaming detector
of a few buckets of state, updated in microseconds; and the PSI of binned counts is a few
lines here, on counts that stay bounded.

**State** (:meth:`ModelHealth.to_dict`, :meth:`ModelHealth.load`) is JSON: the reference,
the buckets' counts, the pending batch, the batches in ADWIN's window (at most
``history``) and the last change. ADWIN itself is not serialised (river offers pickle
only, and nothing read back from Redis is unpickled): it is rebuilt by replaying the saved
batch values, which restores its window (a window longer than ``history`` batches
restarts shorter).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from features.definitions import CALENDAR_FEATURES, HISTORY_LENGTH_FEATURES
from models.reference import PSI_DRIFTED, FeatureReference

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

DEFAULT_PSI_THRESHOLD: Final = PSI_DRIFTED
DEFAULT_WINDOW_S: Final = 6 * 3600.0
"""Feature rows of the last six hours make the observed distribution: who is active changes
with the hour of the day (an hour of evening traffic is not the day a model was trained
on), and a quarter of the day evens much of that out while a change of population still
shows within the hour (its rows fall in bins the reference hardly fills)."""
DEFAULT_BUCKET_S: Final = 300.0
DEFAULT_MIN_ROWS: Final = 1000
"""Feature rows in the window before drift is judged."""
DEFAULT_MIN_SETTLED: Final = 500
"""Settled predictions (since the champion changed) before a rise of the loss counts."""
DEFAULT_BATCH_SIZE: Final = 200
"""Settled predictions per value fed to ADWIN."""
DEFAULT_ADWIN_DELTA: Final = 0.002
"""ADWIN's confidence parameter (river's default): smaller, fewer false alarms, slower."""
DEFAULT_HISTORY: Final = 2048
"""Batches kept for rebuilding ADWIN from saved state."""
NOT_JUDGED: Final = frozenset(CALENDAR_FEATURES + HISTORY_LENGTH_FEATURES)
"""Features whose PSI is reported but never judged (see the module docstring)."""
RATIO_CAP: Final = 10.0
"""Largest loss ratio fed to ADWIN: one confident miss among certain rows stays bounded."""
LOSS_CLIP: Final = 1e-15
"""Probabilities are clipped to [clip, 1 - clip] for the log loss (as in training)."""
FORMAT: Final = 1
"""Version of the state's layout."""


@dataclass(frozen=True, slots=True)
class HealthThresholds:
    psi: float = DEFAULT_PSI_THRESHOLD
    window_s: float = DEFAULT_WINDOW_S
    bucket_s: float = DEFAULT_BUCKET_S
    min_rows: int = DEFAULT_MIN_ROWS
    min_settled: int = DEFAULT_MIN_SETTLED
    batch_size: int = DEFAULT_BATCH_SIZE
    delta: float = DEFAULT_ADWIN_DELTA
    history: int = DEFAULT_HISTORY

    def __post_init__(self) -> None:
        if not (self.psi > 0 and self.window_s > 0 and self.bucket_s > 0):
            raise ValueError("psi, window_s and bucket_s must be > 0")
        if self.bucket_s > self.window_s:
            raise ValueError("bucket_s must not exceed window_s")
        if min(self.min_rows, self.min_settled) < 0 or min(self.batch_size, self.history) < 1:
            raise ValueError("min_rows and min_settled must be >= 0, batch_size and history >= 1")
        if not 0 < self.delta < 1:
            raise ValueError("delta must be in (0, 1)")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


DEFAULT_THRESHOLDS: Final = HealthThresholds()


@dataclass(frozen=True, slots=True)
class LossChange:
    """A change of the live loss that ADWIN detected."""

    at: float
    increase: bool
    before: float
    """Mean loss ratio (log loss over expected log loss) of the batches ADWIN dropped."""
    after: float
    """Mean loss ratio of the batches it kept."""
    before_log_loss: float | None
    """Mean log loss of the dropped batches (None: older than the batches kept in state)."""
    after_log_loss: float | None
    batch: int
    """The batch (counted since the champion changed) at which it was detected."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LossChange:
        try:
            return cls(
                at=float(data["at"]),
                increase=bool(data["increase"]),
                before=float(data["before"]),
                after=float(data["after"]),
                before_log_loss=_optional_float(data.get("before_log_loss")),
                after_log_loss=_optional_float(data.get("after_log_loss")),
                batch=int(data["batch"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"bad loss change in health state: {e}") from e


@dataclass(frozen=True)
class HealthReport:
    at: float
    version: str | None
    degraded: bool
    reasons: list[str]
    """Why it is degraded (empty when it is not)."""
    notes: list[str]
    """What was not judged and why (no reference, too few rows or settled predictions)."""
    psi: dict[str, float]
    psi_max: float | None
    drifted_features: list[str]
    rows: int
    """Feature rows in the window."""
    loss_change: LossChange | None
    """The last detected rise of the loss (None: none, or a later fall cleared it)."""
    loss_ratio: float | None
    """ADWIN's current mean of the loss ratio (None: no batch yet)."""
    settled: int
    """Settled predictions since the champion changed."""
    batches: int
    thresholds: HealthThresholds = field(default=DEFAULT_THRESHOLDS)

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "version": self.version,
            "degraded": self.degraded,
            "reasons": list(self.reasons),
            "notes": list(self.notes),
            "psi": dict(self.psi),
            "psi_max": self.psi_max,
            "drifted_features": list(self.drifted_features),
            "rows": self.rows,
            "loss_change": None if self.loss_change is None else self.loss_change.to_dict(),
            "loss_ratio": self.loss_ratio,
            "settled": self.settled,
            "batches": self.batches,
            "thresholds": self.thresholds.to_dict(),
        }


class ModelHealth:
    """Feature drift and live-loss changes of one model version (see the module)."""

    def __init__(
        self,
        reference: FeatureReference | None = None,
        *,
        version: str | None = None,
        thresholds: HealthThresholds = DEFAULT_THRESHOLDS,
    ) -> None:
        self.thresholds = thresholds
        self.version = version
        self.reference = reference
        self._reset()

    def _reset(self) -> None:
        self._buckets: dict[int, Floats] = {}
        self._settled = 0
        self._pending = [0, 0.0, 0.0]  # predictions, log-loss sum, entropy sum
        self._batches: deque[tuple[float, float, int]] = deque(maxlen=self.thresholds.history)
        self._fed = 0
        self._change: LossChange | None = None
        self._adwin = _adwin(self.thresholds.delta)

    def set_reference(self, version: str | None, reference: FeatureReference | None) -> None:
        """The champion is now ``version`` with ``reference``: everything observed so far
        is forgotten, unless it is the version (and reference) already monitored."""
        if version == self.version and reference == self.reference:
            return
        self.version, self.reference = version, reference
        self._reset()

    # -- observing -----------------------------------------------------------------------

    def observe_features(self, matrix: Floats, now: float) -> None:
        """Count the feature rows scored at ``now`` (columns in the reference's order);
        ignored without a reference."""
        if self.reference is None:
            return
        counts = self.reference.counts(matrix)
        key = math.floor(now / self.thresholds.bucket_s)
        if key in self._buckets:
            self._buckets[key] += counts
        else:
            self._buckets[key] = counts
        self._expire(now)

    def observe_outcomes(
        self,
        probability: Floats,
        outcome: Bools | Floats,
        now: float,
        *,
        version: str | None = None,
    ) -> LossChange | None:
        """Settled predictions of the champion: the probabilities served and whether each
        user connected (booleans, or 0 and 1). Predictions of another ``version`` than the
        monitored one are ignored. Returns the change ADWIN detected with them, if any."""
        if version is not None and version != self.version:
            return None
        p = np.asarray(probability, dtype=np.float64)
        y = np.asarray(outcome, dtype=np.float64)
        if p.ndim != 1 or p.shape != y.shape:
            raise ValueError(f"probabilities {p.shape} and outcomes {y.shape} must be 1-D alike")
        if not np.all(np.isfinite(p) & (p >= 0) & (p <= 1)):
            raise ValueError("probabilities must be finite and within [0, 1]")
        if not np.all((y == 0) | (y == 1)):
            raise ValueError("outcomes must be booleans, or 0 and 1")
        if not len(p):
            return None
        q = np.clip(p, LOSS_CLIP, 1.0 - LOSS_CLIP)
        loss = -(y * np.log(q) + (1.0 - y) * np.log1p(-q))
        entropy = -(q * np.log(q) + (1.0 - q) * np.log1p(-q))
        self._settled += len(p)
        self._pending[0] = int(self._pending[0]) + len(p)
        self._pending[1] += float(loss.sum())
        self._pending[2] += float(entropy.sum())
        if self._pending[0] < self.thresholds.batch_size:
            return None
        n, loss_sum, entropy_sum = int(self._pending[0]), self._pending[1], self._pending[2]
        self._pending = [0, 0.0, 0.0]
        return self._feed(min(loss_sum / entropy_sum, RATIO_CAP), loss_sum / n, n, now)

    def _feed(self, ratio: float, log_loss: float, n: int, now: float) -> LossChange | None:
        adwin = self._adwin
        width, total = adwin.width, adwin.estimation * adwin.width
        adwin.update(ratio)
        self._fed += 1
        self._batches.append((ratio, log_loss, n))
        if not adwin.drift_detected:
            return None
        kept = int(adwin.width)
        dropped_n = width + 1 - kept
        before = (total + ratio - adwin.estimation * kept) / dropped_n if dropped_n else ratio
        batches = list(self._batches)
        old, new = batches[: max(len(batches) - kept, 0)], batches[-kept:]
        change = LossChange(
            at=now,
            increase=adwin.estimation > before,
            before=before,
            after=float(adwin.estimation),
            before_log_loss=_mean_loss(old),
            after_log_loss=_mean_loss(new),
            batch=self._fed,
        )
        self._batches = deque(new, maxlen=self.thresholds.history)
        self._change = change if change.increase else None
        return change

    def _expire(self, now: float) -> None:
        start = now - self.thresholds.window_s
        size = self.thresholds.bucket_s
        for key in [k for k in self._buckets if (k + 1) * size <= start]:
            del self._buckets[key]

    # -- reporting -----------------------------------------------------------------------

    def report(self, now: float) -> HealthReport:
        self._expire(now)
        limits = self.thresholds
        reasons: list[str] = []
        notes: list[str] = []
        psi: dict[str, float] = {}
        rows = 0
        if self.reference is None:
            notes.append("no training reference (a version trained before references)")
        else:
            counts = sum(self._buckets.values(), np.zeros((len(self.reference.feature_names), 1)))
            rows = int(counts[0].sum()) if self._buckets else 0
            if rows:
                values = self.reference.psi(counts)
                psi = {
                    n: float(v) for n, v in zip(self.reference.feature_names, values, strict=True)
                }
        finite = {k: v for k, v in psi.items() if math.isfinite(v) and k not in NOT_JUDGED}
        psi_max = max(finite.values()) if finite else None
        drifted = sorted((k for k, v in finite.items() if v > limits.psi), key=lambda k: -psi[k])
        if self.reference is not None and rows < limits.min_rows:
            notes.append(
                f"{rows} feature rows in the window (< {limits.min_rows}): drift not judged"
            )
            drifted = []
        elif drifted:
            listed = ", ".join(f"{k} {psi[k]:.3f}" for k in drifted)
            reasons.append(f"feature drift: PSI above {limits.psi} for {listed}")
        change = self._change
        if change is not None and self._settled < limits.min_settled:
            notes.append(
                f"a rise of the loss was detected on {self._settled} settled predictions "
                f"(< {limits.min_settled}): not counted"
            )
        elif change is not None:
            reasons.append(
                f"live loss rose: loss ratio {change.before:.3f} -> {change.after:.3f} "
                f"(ADWIN, batch {change.batch})"
            )
        elif self._settled < limits.min_settled:
            notes.append(f"{self._settled} settled predictions (< {limits.min_settled})")
        return HealthReport(
            at=now,
            version=self.version,
            degraded=bool(reasons),
            reasons=reasons,
            notes=notes,
            psi=psi,
            psi_max=psi_max,
            drifted_features=drifted,
            rows=rows,
            loss_change=change,
            loss_ratio=float(self._adwin.estimation) if self._fed else None,
            settled=self._settled,
            batches=self._fed,
            thresholds=limits,
        )

    # -- state ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The state, JSON-safe (see the module docstring)."""
        return {
            "format": FORMAT,
            "version": self.version,
            "reference": None if self.reference is None else self.reference.to_dict(),
            "buckets": {str(k): v.tolist() for k, v in sorted(self._buckets.items())},
            "settled": self._settled,
            "pending": list(self._pending),
            "batches": [list(b) for b in self._batches],
            "fed": self._fed,
            "change": None if self._change is None else self._change.to_dict(),
        }

    @classmethod
    def load(
        cls, data: Mapping[str, Any], thresholds: HealthThresholds = DEFAULT_THRESHOLDS
    ) -> ModelHealth:
        """The monitor :meth:`to_dict` saved; ValueError saying what is wrong otherwise."""
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, Mapping) else type(data).__name__
            raise ValueError(f"health state format {found!r}, expected {FORMAT}")
        version = data.get("version")
        if version is not None and not isinstance(version, str):
            raise ValueError("the health state's version must be a string or null")
        raw_reference = data.get("reference")
        reference = None if raw_reference is None else FeatureReference.from_dict(raw_reference)
        health = cls(reference, version=version, thresholds=thresholds)
        try:
            buckets = {int(k): np.asarray(v, dtype=np.float64) for k, v in data["buckets"].items()}
            settled = int(data["settled"])
            n, loss_sum, entropy_sum = data["pending"]
            batches = [(float(r), float(lo), int(c)) for r, lo, c in data["batches"]]
            fed = int(data["fed"])
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ValueError(f"bad health state: {e}") from e
        shape = None if reference is None else (len(reference.feature_names), reference.n_bins)
        for counts in buckets.values():
            if counts.shape != shape or not np.all(np.isfinite(counts) & (counts >= 0)):
                raise ValueError(f"health state counts must be of shape {shape}, >= 0")
        if settled < 0 or fed < 0 or not all(math.isfinite(r) and r >= 0 for r, _, _ in batches):
            raise ValueError("bad health state: negative counts or non-finite batches")
        health._buckets = buckets
        health._settled = settled
        health._pending = [int(n), float(loss_sum), float(entropy_sum)]
        for ratio, _, _ in batches[-thresholds.history :]:
            health._adwin.update(ratio)
        kept = min(int(health._adwin.width), len(batches))
        health._batches = deque(batches[len(batches) - kept :], maxlen=thresholds.history)
        health._fed = fed
        change = data.get("change")
        health._change = None if change is None else LossChange.from_dict(change)
        return health


def _adwin(delta: float) -> Any:
    """River's ADWIN, checking for a change at every value (one value is one batch)."""
    from river.drift import ADWIN

    return ADWIN(delta=delta, clock=1)  # type: ignore[no-untyped-call]


def _mean_loss(batches: list[tuple[float, float, int]]) -> float | None:
    n = sum(c for _, _, c in batches)
    return sum(lo * c for _, lo, c in batches) / n if n else None


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)
