"""The training rows built on a Dask cluster, user partition by user partition.

The driver splits the event table by user (``features.partitions.user_partition``, the
function of the partitioned export) into one table per partition, scatters them to the
workers, and each worker builds its users' rows with ``training.dataset.build_dataset``:
the same cutoffs, features and labels as on one machine. Every partition keeps the whole
table's user codes and ends where the whole table ends (``last_event_ms``), so its rows
are exactly the single-machine rows of its users; merged by time, then user, they are the
single-machine dataset, row for row, and the time split cuts them at the same places.

The partitions' rows stay on the workers for the booster (``training.dask_booster``),
which :class:`DaskTraining` fits as ``training.train.train``'s ``fit``; the rows also come
back to the driver, whose calibration, evaluation, reference and logging are the
single-machine code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from features.definitions import FEATURE_NAMES
from features.partitions import user_partition
from features.table import EventTable, Int32s, Int64s
from training.dataset import Dataset, DatasetSpec, Split, TimeSplit, build_dataset, event_range_of
from training.train import Rows, StageProgress, TrainConfig

if TYPE_CHECKING:
    from distributed import Client, Future

PartitionProgress = Callable[[int, int], None]
"""``progress(partitions_built, partitions)``."""


def user_partitions(table: EventTable, partitions: int) -> list[EventTable]:
    """The events of each user partition, in time order, with ``table``'s user codes."""
    of_user = np.fromiter(
        (user_partition(user_id, partitions) for user_id in table.user_ids),
        dtype=np.int64,
        count=table.n_users,
    )
    of_event = of_user[table.user] if len(table) else np.empty(0, dtype=np.int64)
    return [
        EventTable(table.ts_ms[mine], table.kind[mine], table.user[mine], table.user_ids)
        for mine in (of_event == k for k in range(partitions))
    ]


def build_partition(
    part: EventTable, spec: DatasetSpec, rows_since: float | None, last_event_ms: int
) -> Dataset:
    """The rows of one partition's users (a worker's task)."""
    return build_dataset(part, spec, rows_since=rows_since, last_event_ms=last_event_ms)


def row_keys(part: Dataset) -> tuple[Int64s, Int32s]:
    """A partition's row times and users: what orders the merged rows (a worker's task)."""
    return part.t_ms, part.user


def merge_partitions(
    parts: Iterable[Dataset],
    keys: Sequence[tuple[Int64s, Int32s]],
    table: EventTable,
    spec: DatasetSpec,
) -> Dataset:
    """The rows of all ``parts`` in ``build_dataset``'s order (by time, then user), as the
    dataset of the whole ``table``. ``keys`` are the parts' :func:`row_keys`, in the same
    order: the merged rows' places are known before any part's features arrive, so each
    part is copied to its places and can be let go (``parts`` may yield them one by one):
    no concatenated or reordered copy of the features."""
    t_ms = np.concatenate([t for t, _ in keys]) if keys else np.empty(0, dtype=np.int64)
    user = np.concatenate([u for _, u in keys]) if keys else np.empty(0, dtype=np.int32)
    order = np.lexsort((user, t_ms))
    place = np.empty(len(order), dtype=np.int64)
    place[order] = np.arange(len(order))
    X = np.empty((len(order), len(FEATURE_NAMES)), dtype=np.float64)
    y = np.empty(len(order), dtype=np.bool_)
    w = np.empty(len(order), dtype=np.float64)
    wait_s = np.empty(len(order), dtype=np.float64)
    start = 0
    for part, (part_t_ms, _) in zip(parts, keys, strict=True):
        if len(part) != len(part_t_ms):
            raise ValueError(f"a part of {len(part)} rows whose keys are {len(part_t_ms)}")
        at = place[start : start + len(part)]
        X[at] = part.X.reshape(-1, len(FEATURE_NAMES))
        y[at], w[at], wait_s[at] = part.y, part.w, part.wait_s
        start += len(part)
    return Dataset(
        X,
        y,
        w,
        t_ms[order],
        user[order],
        spec,
        event_range_of(table),
        user_ids=table.user_ids,
        wait_s=wait_s,
    )


def slice_rows(part: Dataset, cuts: TimeSplit, slice_index: int) -> Rows:
    """A partition's rows of one slice of the split (0 train, 1 validation, 2 test): views
    of the partition's arrays (its rows are in time order)."""
    rows = cuts.picks(part.t_ms)[slice_index]
    return part.X[rows], part.y[rows], part.w[rows]


class DaskTraining:
    """A job's training on a Dask cluster: :meth:`build_dataset`, then :meth:`fit` as
    ``train``'s booster fit, on the partitions that build left on the workers."""

    def __init__(self, client: Client, partitions: int) -> None:
        if partitions < 1:
            raise ValueError(f"partitions must be 1 or more, not {partitions}")
        self.client = client
        self.partitions = partitions
        self._built: list[Future] = []
        self._times: list[Int64s] = []

    def build_dataset(
        self,
        table: EventTable,
        spec: DatasetSpec,
        *,
        rows_since: float | None = None,
        progress: PartitionProgress | None = None,
    ) -> Dataset:
        """The dataset of ``table``, its rows built per user partition on the workers."""
        from distributed import as_completed

        report = progress or (lambda done, total: None)
        last_event_ms = int(table.ts_ms[-1]) if len(table) else 0
        scattered = self.client.scatter(user_partitions(table, self.partitions))
        futures = [
            self.client.submit(build_partition, part, spec, rows_since, last_event_ms)
            for part in scattered
        ]
        report(0, len(futures))
        for done, _ in enumerate(as_completed(futures), start=1):
            report(done, len(futures))
        keys = self.client.gather([self.client.submit(row_keys, built) for built in futures])
        self._built = futures
        self._times = [t_ms for t_ms, _ in keys]
        # One partition's rows come over at a time, each let go once merged.
        parts = (self.client.gather(built) for built in futures)
        return merge_partitions(parts, keys, table, spec)

    def fit(
        self, dataset: Dataset, split: Split, config: TrainConfig, progress: StageProgress
    ) -> Any:
        """The booster on the train rows of the partitions, where they were built, early
        stopped on the validation slice (``training.dask_booster``). The workers let the
        partitions' rows go after it: the rest of the job is the driver's."""
        from training.dask_booster import fit_dask_booster

        if not self._built:
            raise RuntimeError("build_dataset first: the booster is fitted on its partitions")
        cuts = dataset.time_split(config.split)
        train_parts = [
            (self.client.submit(slice_rows, built, cuts, 0), int(cuts.masks(times)[0].sum()))
            for built, times in zip(self._built, self._times, strict=True)
        ]
        validation = split.validation
        try:
            return fit_dask_booster(
                self.client,
                train_parts,
                (validation.X, validation.y, validation.w),
                list(dataset.feature_names),
                config,
                progress=progress,
            )
        finally:
            self._built, self._times = [], []
