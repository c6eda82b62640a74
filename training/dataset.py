"""Point-in-time training data: features at cutoffs, the label over the horizon after each.

Cutoffs lie on a grid every ``every_s`` seconds. A row is a user who has been seen and
is not connected at a cutoff; its label is whether the user connects within the horizon
H after it (``features.labels``). Cutoffs whose horizon runs past the end of the data
are left out: their label is unknown.

Most rows of a large population are users who have shown no sign of life for a while;
they almost never connect within H. All such *quiet* rows (no event of the user in the
last ``quiet_after_s``) are kept only every ``quiet_stride``-th grid point, with weight
``quiet_stride``: an unbiased sample, so the weighted loss and the calibrated
probabilities are those of the full grid, at a fraction of the rows. Busy rows are all
kept, with weight 1. Which grid points a user's quiet rows take is the user's own phase, a
hash of its id (:func:`quiet_phases`): a user's rows depend on its events alone, not on
which other users the table holds (one partition of them, or a window).

The split is by time, never shuffled: train, validation and test are consecutive
periods, and rows whose label window would reach into the next period are purged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from features.batch import BatchHistory
from features.definitions import FEATURE_NAMES, compute_features
from features.labels import waits_within
from features.table import EventTable, to_ms
from models.defaults import DEFAULT_HORIZON_S
from training.defaults import DEFAULT_EVERY_S, DEFAULT_QUIET_AFTER_S, DEFAULT_QUIET_STRIDE

Floats = npt.NDArray[np.float64]
Int64s = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

CHUNK_ROWS: Final = 500_000


@dataclass(frozen=True, slots=True)
class DatasetSpec:
    horizon_s: float = DEFAULT_HORIZON_S
    every_s: float = DEFAULT_EVERY_S
    quiet_after_s: float = DEFAULT_QUIET_AFTER_S
    quiet_stride: int = DEFAULT_QUIET_STRIDE

    def __post_init__(self) -> None:
        if self.horizon_s <= 0 or self.every_s <= 0 or self.quiet_after_s <= 0:
            raise ValueError("horizon, spacing and quiet time must be positive")
        if self.quiet_stride < 1:
            raise ValueError("quiet_stride must be >= 1")


@dataclass(frozen=True, slots=True)
class Dataset:
    """Rows in time order: features ``X``, labels ``y``, sample weights ``w``."""

    X: Floats
    y: npt.NDArray[np.bool_]
    w: Floats
    t_ms: Int64s
    user: npt.NDArray[np.int32]
    spec: DatasetSpec
    event_range: tuple[float, float]
    """First and last event time (unix s) of the events the rows were built from."""
    feature_names: tuple[str, ...] = FEATURE_NAMES
    user_ids: tuple[str, ...] = field(default=(), repr=False)
    wait_s: Floats = field(default_factory=lambda: np.empty(0), repr=False)
    """Seconds to each row's connect within the horizon, infinity when none
    (``features.labels.waits_within``): the time-to-connect model's label. Empty for rows
    not built from events."""

    def __len__(self) -> int:
        return len(self.y)

    @property
    def positives(self) -> int:
        return int(self.y.sum())

    def rows(self, mask: Bools | Int64s | slice) -> Dataset:
        """The rows of ``mask`` (or at positions): copies, or views of these rows' arrays
        for a slice."""
        return Dataset(
            self.X[mask],
            self.y[mask],
            self.w[mask],
            self.t_ms[mask],
            self.user[mask],
            self.spec,
            self.event_range,
            self.feature_names,
            self.user_ids,
            self.wait_s[mask] if len(self.wait_s) else self.wait_s,
        )

    def split(self, fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)) -> Split:
        """Train, validation and test periods, consecutive in time (see module docstring)."""
        train, validation, test = self.time_split(fractions).picks(self.t_ms)
        return Split(train=self.rows(train), validation=self.rows(validation), test=self.rows(test))

    def time_split(self, fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)) -> TimeSplit:
        """Where :meth:`split` cuts these rows: applied to any part of them (a partition's
        rows), its masks pick that part's rows of each slice."""
        if len(fractions) != 3 or any(f <= 0 for f in fractions):
            raise ValueError("three positive fractions: train, validation, test")
        if not len(self):
            raise ValueError("no rows to split")
        start, end = int(self.t_ms.min()), int(self.t_ms.max()) + 1
        total = sum(fractions)
        return TimeSplit(
            first_ms=start + int((end - start) * fractions[0] / total),
            second_ms=start + int((end - start) * (fractions[0] + fractions[1]) / total),
            purge_ms=int(self.spec.horizon_s * 1000),
        )

    def digest(self) -> str:
        """SHA-256 of the rows (features, labels, weights, times): identifies the data."""
        h = hashlib.sha256()
        for array in (self.X, self.y, self.w, self.t_ms, self.user):
            h.update(np.ascontiguousarray(array).tobytes())
        h.update(repr((self.spec, self.feature_names)).encode())
        return h.hexdigest()


@dataclass(frozen=True, slots=True)
class TimeSplit:
    """The cuts of a time split: validation from ``first_ms``, test from ``second_ms``; the
    rows whose label window (``purge_ms``) reaches into the next period are left out."""

    first_ms: int
    second_ms: int
    purge_ms: int

    def masks(self, t_ms: Int64s) -> tuple[Bools, Bools, Bools]:
        """The train, validation and test rows among rows at ``t_ms``."""
        return (
            t_ms < self.first_ms - self.purge_ms,
            (t_ms >= self.first_ms) & (t_ms < self.second_ms - self.purge_ms),
            t_ms >= self.second_ms,
        )

    def picks(self, t_ms: Int64s) -> tuple[Bools | slice, Bools | slice, Bools | slice]:
        """:meth:`ranges` for rows in time order (as built: views of their arrays, not
        copies), else :meth:`masks`."""
        if np.all(t_ms[1:] >= t_ms[:-1]):
            return self.ranges(t_ms)
        return self.masks(t_ms)

    def ranges(self, t_ms: Int64s) -> tuple[slice, slice, slice]:
        """:meth:`masks` as runs of rows, for ``t_ms`` in time order."""
        at = np.searchsorted(
            t_ms,
            [
                self.first_ms - self.purge_ms,
                self.first_ms,
                self.second_ms - self.purge_ms,
                self.second_ms,
            ],
        ).tolist()
        return slice(0, at[0]), slice(at[1], max(at[1], at[2])), slice(at[3], len(t_ms))


@dataclass(frozen=True, slots=True)
class Split:
    train: Dataset
    validation: Dataset
    test: Dataset


def build_dataset(
    table: EventTable,
    spec: DatasetSpec | None = None,
    *,
    rows_since: float | None = None,
    progress: Callable[[int, int], None] | None = None,
    last_event_ms: int | None = None,
) -> Dataset:
    """All rows of ``table`` (see the module docstring), or those at ``rows_since`` (unix s)
    and later: the events before only give the features their history (a warm-up);
    ``progress(done, total)`` per chunk. ``last_event_ms``: where the events end, when
    ``table`` is a part of them (one partition of the users; see :func:`cutoffs`)."""
    spec = spec or DatasetSpec()
    history = BatchHistory(table)
    users, t_ms, weights = cutoffs(table, spec, last_event_ms=last_event_ms)
    free = ~history.connected(users, t_ms)
    if rows_since is not None:
        free &= t_ms >= to_ms(rows_since)
    users, t_ms, weights = users[free], t_ms[free], weights[free]
    # Rows come out in time order; they are computed in (user, time) order, which keeps
    # the searches of the batch path cache-friendly, and scattered to their place.
    by_time = np.argsort(t_ms, kind="stable")
    place = np.empty(len(t_ms), dtype=np.int64)
    place[by_time] = np.arange(len(t_ms))
    X = np.empty((len(t_ms), len(FEATURE_NAMES)), dtype=np.float64)
    for begin in range(0, len(t_ms), CHUNK_ROWS):
        chunk = slice(begin, begin + CHUNK_ROWS)
        X[place[chunk]] = compute_features(history.snapshots(users[chunk], t_ms[chunk]))
        if progress is not None:
            progress(min(begin + CHUNK_ROWS, len(t_ms)), len(t_ms))
    u, t, w = users[by_time], t_ms[by_time], weights[by_time]
    wait_s = waits_within(history, u, t, int(spec.horizon_s * 1000))
    return Dataset(
        X,
        np.isfinite(wait_s),
        w,
        t,
        u.astype(np.int32),
        spec,
        event_range_of(table),
        user_ids=table.user_ids,
        wait_s=wait_s,
    )


def event_range_of(table: EventTable) -> tuple[float, float]:
    """First and last event time (unix s) of ``table``; (0, 0) when empty."""
    if not len(table):
        return (0.0, 0.0)
    return (float(table.ts_ms[0]) / 1000, float(table.ts_ms[-1]) / 1000)


def cutoffs(
    table: EventTable, spec: DatasetSpec, *, last_event_ms: int | None = None
) -> tuple[Int64s, Int64s, Floats]:
    """Candidate rows ``(user, t_ms, weight)``, by user then time, before the not-connected
    filter. The last cutoff is a horizon before ``last_event_ms`` (default: the table's last
    event): the end of all the events, also when ``table`` holds some users' only."""
    empty = (np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64), np.empty(0))
    if not len(table):
        return empty
    every = int(spec.every_s * 1000)
    quiet = int(spec.quiet_after_s * 1000)
    end = int(table.ts_ms[-1]) if last_event_ms is None else last_event_ms
    last_grid = (end - int(spec.horizon_s * 1000)) // every
    order = np.argsort(table.user, kind="stable")  # by user, in time order within each
    user = table.user[order].astype(np.int64)
    ts = table.ts_ms[order]
    # Busy windows: runs of a user's events less than `quiet` apart, each lasting until
    # `quiet` after its last event.
    new_run = np.ones(len(ts), dtype=bool)
    new_run[1:] = (user[1:] != user[:-1]) | (np.diff(ts) > quiet)
    run_start = np.flatnonzero(new_run)
    run_end = np.append(run_start[1:], len(ts)) - 1
    run_user = user[run_start]
    first_grid = -(-ts[run_start] // every)  # ceil: cutoffs at or after the first event
    busy_last = np.minimum((ts[run_end] + quiet) // every, last_grid)
    busy_users, busy_grid = _ranges(run_user, first_grid, busy_last, step=1)

    # Quiet stretches: after each busy window, until the user's next one (or the end).
    next_same_user = np.append(run_user[1:] == run_user[:-1], False)
    quiet_first = busy_last + 1
    quiet_last = np.where(next_same_user, np.append(first_grid[1:], 0) - 1, last_grid)
    offset = quiet_phases(table.user_ids, spec.quiet_stride)[run_user]
    aligned = quiet_first + (-(quiet_first + offset)) % spec.quiet_stride
    quiet_users, quiet_grid = _ranges(run_user, aligned, quiet_last, step=spec.quiet_stride)

    users = np.concatenate([busy_users, quiet_users])
    grid = np.concatenate([busy_grid, quiet_grid])
    weights = np.concatenate(
        [np.ones(len(busy_grid)), np.full(len(quiet_grid), float(spec.quiet_stride))]
    )
    order = np.lexsort((grid, users))  # by user, then time
    return users[order], grid[order] * every, weights[order]


def quiet_phases(user_ids: Sequence[str], stride: int) -> Int64s:
    """Each user's phase on the quiet grid, ``0 .. stride - 1``, from the BLAKE2b hash of
    its id: the same on every machine and process, and unrelated to the user's partition
    (``features.partitions``, a CRC-32)."""
    return np.fromiter(
        (
            int.from_bytes(hashlib.blake2b(u.encode(), digest_size=8).digest(), "little") % stride
            for u in user_ids
        ),
        dtype=np.int64,
        count=len(user_ids),
    )


def _ranges(owner: Int64s, first: Int64s, last: Int64s, *, step: int) -> tuple[Int64s, Int64s]:
    """All ``first + k*step <= last`` per range, with the range's owner: a ragged arange."""
    counts = np.where(last >= first, (last - first) // step + 1, 0)
    total = int(counts.sum())
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    within = np.arange(total, dtype=np.int64) - starts
    return np.repeat(owner, counts), np.repeat(first, counts) + within * step
