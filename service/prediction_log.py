"""The prediction log: each tick's scores, joined with what the users then did.

At every tick the engine hands over the scores the scaler used (and a challenger's, when
one runs in shadow): engine user rows, the scorer's raw probability about **its own
horizon** ``H`` (``Scores.horizon_s``, not the lead time) and a version label (the model
version for model rows, ``"heuristic"`` for the fallback's rows). The rules:

- **Outcome**: a prediction made at ``at`` is 1 when that user connects in ``(at, at + H]``
  (the engine calls :meth:`PredictionLog.connect` on every connect, as for the calibration),
  else 0. A connect exactly at ``at + H`` counts; one at ``at`` does not (it came before or
  with the tick). A user scored on consecutive ticks has one prediction per tick, each
  judged over its own window. Connects of users a record does not hold change nothing.
- **Settling**: a prediction is settled on the first tick or event after ``at + H``
  (:meth:`PredictionLog.advance`, called by the engine on every event and tick). Strictly
  after: events at the instant ``at + H`` itself may still bring a connect that counts, so
  settling waits at most one more tick. A settled prediction goes to the live metrics
  (``service.live_metrics``) and to the queue of :meth:`PredictionLog.take_settled`, for
  other consumers (a model-health monitor).
- **Bounded**: only the records still waiting for their horizon are kept (about ``H`` over
  the tick interval of them per version), each holding at most ``max_per_tick`` users: with
  more, a sample of exactly ``max_per_tick`` is kept, those with the smallest hash of
  (user row, tick time in ms) (a SplitMix64 mix). The hash is deterministic (no randomness
  in the core; a replay logs the same users) and knows nothing of the scores or the
  outcomes, so every user of the tick is kept with the same probability ``k / n``, and each
  kept prediction carries the weight ``n / k`` (the users it stands for): weighted sums over
  the sample are unbiased estimates of the sums over everyone scored (Horvitz-Thompson),
  and ticks with many users weigh as much as they should against ticks with few. Versions
  scored on the same users at the same tick keep the same sample (paired comparison). The
  queue of settled predictions keeps at most ``keep_settled`` per version; older ones are
  dropped (and counted) when nobody takes them.
- **Cost**: a record keeps its rows sorted; a connect looks its user up by binary search
  in each pending record (``np.searchsorted``), never an array over all users.

State is plain data (``to_dict`` / ``load``, arrays packed with ``service.packed``): the
pending records, the settled ones not taken yet (the engine takes them at every tick, so
there are few) and the live metrics' buckets, so that a restored log carries on.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from service.live_metrics import LiveMetrics, WindowMetrics, window_name
from service.packed import pack, unpack

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.intp]
U64 = npt.NDArray[np.uint64]

HEURISTIC: Final = "heuristic"
"""The version label of the fallback heuristic's predictions."""

_GOLDEN: Final = np.uint64(0x9E3779B97F4A7C15)
_MIX_1: Final = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2: Final = np.uint64(0x94D049BB133111EB)


def _mix(x: U64) -> U64:
    """SplitMix64's finaliser: a bijection of 64-bit integers that scrambles every bit."""
    x = x + _GOLDEN
    x = (x ^ (x >> np.uint64(30))) * _MIX_1
    x = (x ^ (x >> np.uint64(27))) * _MIX_2
    mixed: U64 = x ^ (x >> np.uint64(31))
    return mixed


def sample(rows: Ints, at: float, k: int) -> Ints:
    """Positions (increasing) of the ``k`` rows with the smallest hash of (row, ``at`` in ms);
    all positions when there are at most ``k`` rows."""
    n = len(rows)
    if n <= k:
        return np.arange(n, dtype=np.intp)
    salt = _mix(np.array([round(at * 1000.0) & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))
    keys = _mix(rows.astype(np.uint64) ^ salt)
    chosen: Ints = np.sort(np.argpartition(keys, k - 1)[:k]).astype(np.intp)
    return chosen


@dataclass(slots=True)
class _Pending:
    """One version's predictions of one tick, waiting for the horizon to pass."""

    at: float
    horizon_s: float
    version: str
    weight: float
    """Users each prediction stands for: scored / kept."""
    rows: Ints
    """Engine user rows, increasing."""
    probability: Floats
    hit: Bools

    @property
    def due(self) -> float:
        return self.at + self.horizon_s

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "horizon_s": self.horizon_s,
            "version": self.version,
            "weight": self.weight,
            "rows": pack(self.rows, "<i4"),
            "probability": pack(self.probability, "<f8"),
            "hit": pack(np.flatnonzero(self.hit), "<i4"),
        }

    def remapped(self, new_row: Ints) -> _Pending:
        """The record with each row ``r`` renamed ``new_row[r]``; rows mapped to -1 are
        dropped. ``new_row`` must keep the order of the rows it keeps."""
        rows = new_row[self.rows]
        kept = rows >= 0
        return _Pending(
            self.at,
            self.horizon_s,
            self.version,
            self.weight,
            rows[kept],
            self.probability[kept],
            self.hit[kept],
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> _Pending:
        at, horizon_s, weight = (float(data[k]) for k in ("at", "horizon_s", "weight"))
        if not (math.isfinite(at) and math.isfinite(horizon_s) and horizon_s > 0):
            raise ValueError("a pending prediction record needs a finite time and horizon > 0")
        if not (math.isfinite(weight) and weight >= 1.0):
            raise ValueError(f"a pending prediction record's weight must be >= 1, not {weight}")
        version = data["version"]
        if not isinstance(version, str):
            raise ValueError("a pending prediction record's version must be a string")
        rows = unpack(data["rows"], "<i4", "a pending prediction record's rows").astype(np.intp)
        probability = unpack(data["probability"], "<f8", "a pending prediction record's scores")
        hits = unpack(data["hit"], "<i4", "a pending prediction record's hits").astype(np.intp)
        if len(rows) and (rows[0] < 0 or np.any(np.diff(rows) <= 0)):
            raise ValueError("a pending prediction record's rows must be increasing and >= 0")
        if probability.shape != rows.shape or not (
            np.all(probability >= 0.0) and np.all(probability <= 1.0)
        ):
            raise ValueError(
                f"a pending prediction record must hold {len(rows)} probabilities in [0, 1]"
            )
        if len(hits) and (hits.min() < 0 or hits.max() >= len(rows)):
            raise ValueError("a pending prediction record's hits are out of range")
        hit = np.zeros(len(rows), dtype=np.bool_)
        hit[hits] = True
        return cls(at, horizon_s, version, weight, rows, probability, hit)


@dataclass(frozen=True, slots=True)
class Settled:
    """One version's predictions settled since the last :meth:`PredictionLog.take_settled`."""

    probability: Floats
    """What the scorer said, about its own horizon."""
    outcome: Bools
    """True: the user connected within the horizon."""
    weight: Floats
    """Users each prediction stands for (1 unless its tick was sampled)."""
    at: Floats
    """When each prediction was made."""
    rows: Ints
    """The engine user row each prediction is about."""

    def __len__(self) -> int:
        return len(self.probability)


class PredictionLog:
    def __init__(
        self,
        *,
        max_per_tick: int,
        bucket_s: float,
        windows_s: Sequence[float],
        keep_settled: int,
    ) -> None:
        if max_per_tick < 1:
            raise ValueError(f"max_per_tick must be >= 1, not {max_per_tick}")
        if keep_settled < 0:
            raise ValueError(f"keep_settled must be >= 0, not {keep_settled}")
        self.max_per_tick = max_per_tick
        self.keep_settled = keep_settled
        self.metrics = LiveMetrics(bucket_s=bucket_s, windows_s=windows_s)
        self.champion: str | None = None
        """The label of the scorer that sizes (set by the engine)."""
        self.challenger: str | None = None
        """The label of the scorer in shadow, if any (set by the engine)."""
        self.dropped_settled = 0
        """Settled predictions dropped from the queue because nobody took them."""
        self._pending: list[_Pending] = []
        self._settled: dict[str, deque[_Pending]] = {}
        self._queued: dict[str, int] = {}

    def __len__(self) -> int:
        """Predictions waiting for their horizon."""
        return sum(len(r.rows) for r in self._pending)

    # -- feeding ---------------------------------------------------------------------------

    def record(
        self,
        now: float,
        rows: Ints,
        probability: Floats,
        version: str,
        horizon_s: float,
        *,
        weight: float = 1.0,
    ) -> None:
        """A tick at ``now`` scored ``rows`` (distinct engine user rows) with ``probability``
        (of a connect within ``horizon_s``) by ``version``. ``weight``: the users each row
        already stands for, when the caller scored a sample (``sample``) of them. Settles
        what is due first."""
        self.advance(now)
        n = len(rows)
        if n == 0 or not (math.isfinite(horizon_s) and horizon_s > 0):
            return
        if not (math.isfinite(weight) and weight >= 1.0):
            raise ValueError(f"weight must be a finite number >= 1, not {weight}")
        rows = np.asarray(rows, dtype=np.intp)
        # fmax / fmin: into [0, 1], NaN to 0
        probability = np.fmin(np.fmax(np.asarray(probability, np.float64), 0.0), 1.0)
        if n > 1 and np.any(rows[1:] <= rows[:-1]):
            order = np.argsort(rows, kind="stable")
            rows, probability = rows[order], probability[order]
        kept = sample(rows, now, self.max_per_tick)
        self._pending.append(
            _Pending(
                at=now,
                horizon_s=float(horizon_s),
                version=version,
                weight=weight * n / len(kept),
                rows=rows[kept],
                probability=probability[kept],
                hit=np.zeros(len(kept), dtype=np.bool_),
            )
        )

    def connect(self, row: int, now: float) -> None:
        """User ``row`` (engine row) connected at ``now``: a hit for every pending
        prediction about that user whose window ``(at, at + H]`` holds ``now``."""
        self.advance(now)
        for record in self._pending:
            if not record.at < now <= record.due:
                continue
            position = int(np.searchsorted(record.rows, row))
            if position < len(record.rows) and record.rows[position] == row:
                record.hit[position] = True

    def advance(self, now: float) -> None:
        """Settle the predictions whose horizon ended before ``now``."""
        if not any(record.due < now for record in self._pending):
            return
        waiting = []
        for record in self._pending:
            if record.due < now:
                self._settle(record)
            else:
                waiting.append(record)
        self._pending = waiting
        self.metrics.expire(now)

    def remap(self, new_row: Ints) -> None:
        """The engine renumbered its user rows (``UserTable.compact``): row ``r`` is now
        ``new_row[r]``, or gone when -1: its predictions, pending or settled and not yet
        taken, are dropped (the engine forgets only users too long unseen to have any)."""
        self._pending = [record.remapped(new_row) for record in self._pending]
        for version, queue in self._settled.items():
            self._settled[version] = deque(record.remapped(new_row) for record in queue)
            self._queued[version] = sum(len(record.rows) for record in self._settled[version])

    # -- reading ---------------------------------------------------------------------------

    def take_settled(self) -> dict[str, Settled]:
        """Per version label, the predictions settled since the last call (each once)."""
        taken: dict[str, Settled] = {}
        for version, records in self._settled.items():
            if not records:
                continue
            taken[version] = Settled(
                probability=np.concatenate([r.probability for r in records]),
                outcome=np.concatenate([r.hit for r in records]),
                weight=np.concatenate([np.full(len(r.rows), r.weight) for r in records]),
                at=np.concatenate([np.full(len(r.rows), r.at) for r in records]),
                rows=np.concatenate([r.rows for r in records]),
            )
        self._settled.clear()
        self._queued.clear()
        return taken

    def report(self, now: float) -> dict[str, dict[str, WindowMetrics]]:
        """Per version label, per window name, the live metrics at ``now``."""
        return self.metrics.report(now)

    def live(self, now: float) -> dict[str, Any]:
        """The live metrics as JSON-ready data: per version its role and windows."""
        roles = {self.challenger: "challenger", self.champion: "champion"}
        if self.champion != HEURISTIC:
            roles.setdefault(HEURISTIC, "fallback")
        return {
            "champion": self.champion,
            "challenger": self.challenger,
            "bucket_s": self.metrics.bucket_s,
            "windows": [window_name(w) for w in self.metrics.windows_s],
            "pending": len(self),
            "versions": {
                version: {
                    "role": roles.get(version, "retired"),
                    "windows": {name: m.to_dict() for name, m in windows.items()},
                }
                for version, windows in self.report(now).items()
            },
        }

    # -- internals -------------------------------------------------------------------------

    def _settle(self, record: _Pending) -> None:
        self.metrics.add(record.version, record.at, record.probability, record.hit, record.weight)
        if self.keep_settled == 0:
            self.dropped_settled += len(record.rows)
            return
        queue = self._settled.setdefault(record.version, deque())
        queue.append(record)
        queued = self._queued.get(record.version, 0) + len(record.rows)
        while queued > self.keep_settled:
            oldest = queue[0]
            over = queued - self.keep_settled
            if over >= len(oldest.rows):
                queue.popleft()
                queued -= len(oldest.rows)
                self.dropped_settled += len(oldest.rows)
            else:
                queue[0] = _Pending(
                    oldest.at,
                    oldest.horizon_s,
                    oldest.version,
                    oldest.weight,
                    oldest.rows[over:],
                    oldest.probability[over:],
                    oldest.hit[over:],
                )
                queued -= over
                self.dropped_settled += over
        self._queued[record.version] = queued

    # -- state -----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "champion": self.champion,
            "challenger": self.challenger,
            "pending": [record.to_dict() for record in self._pending],
            "settled": [r.to_dict() for queue in self._settled.values() for r in queue],
            "metrics": self.metrics.to_dict(),
        }

    def load(self, data: dict[str, Any]) -> None:
        """Restore ``to_dict``'s state; malformed state raises ``ValueError``."""
        try:
            self._load(data)
        except (KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"the prediction log's state is malformed: {error!r}") from None

    def _load(self, data: dict[str, Any]) -> None:
        for name in ("champion", "challenger"):
            label = data.get(name)
            if label is not None and not isinstance(label, str):
                raise ValueError(f"the prediction log's {name} must be a string or null")
        pending = data.get("pending", [])
        if not isinstance(pending, list):
            raise ValueError("the prediction log's pending records must be a list")
        settled = data.get("settled", [])
        if not isinstance(settled, list):
            raise ValueError("the prediction log's settled records must be a list")
        records = [_Pending.from_dict(r) for r in pending]
        taken = [_Pending.from_dict(r) for r in settled]
        self.metrics.load(data.get("metrics", {"bucket_s": self.metrics.bucket_s, "versions": {}}))
        self.champion, self.challenger = data.get("champion"), data.get("challenger")
        self._pending = records
        self._settled.clear()
        self._queued.clear()
        for record in taken:
            self._settled.setdefault(record.version, deque()).append(record)
            self._queued[record.version] = self._queued.get(record.version, 0) + len(record.rows)
