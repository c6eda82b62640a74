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

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from features.definitions import FEATURE_NAMES
from features.partitions import user_partition
from features.table import EventTable
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


def merge_partitions(parts: Sequence[Dataset], table: EventTable, spec: DatasetSpec) -> Dataset:
    """The rows of all ``parts`` in ``build_dataset``'s order (by time, then user), as the
    dataset of the whole ``table``."""
    t_ms = np.concatenate([p.t_ms for p in parts])
    user = np.concatenate([p.user for p in parts])
    order = np.lexsort((user, t_ms))
    X = np.concatenate([p.X for p in parts]).reshape(-1, len(FEATURE_NAMES))
    return Dataset(
        X[order],
        np.concatenate([p.y for p in parts])[order],
        np.concatenate([p.w for p in parts])[order],
        t_ms[order],
        user[order],
        spec,
        event_range_of(table),
        user_ids=table.user_ids,
        wait_s=np.concatenate([p.wait_s for p in parts])[order],
    )


def slice_rows(part: Dataset, cuts: TimeSplit, slice_index: int) -> Rows:
    """A partition's rows of one slice of the split (0 train, 1 validation, 2 test)."""
    mask = cuts.masks(part.t_ms)[slice_index]
    return part.X[mask], part.y[mask], part.w[mask]


class DaskTraining:
    """A job's training on a Dask cluster: :meth:`build_dataset`, then :meth:`fit` as
    ``train``'s booster fit, on the partitions that build left on the workers."""

    def __init__(self, client: Client, partitions: int) -> None:
        if partitions < 1:
            raise ValueError(f"partitions must be 1 or more, not {partitions}")
        self.client = client
        self.partitions = partitions
        self._built: list[Future] = []
        self._times: list[np.ndarray[Any, np.dtype[np.int64]]] = []

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
        parts: list[Dataset] = self.client.gather(futures)
        self._built = futures
        self._times = [part.t_ms for part in parts]
        return merge_partitions(parts, table, spec)

    def fit(
        self, dataset: Dataset, split: Split, config: TrainConfig, progress: StageProgress
    ) -> Any:
        """The booster on the train rows of the partitions, where they were built, early
        stopped on the validation slice (``training.dask_booster``)."""
        from training.dask_booster import fit_dask_booster

        if not self._built:
            raise RuntimeError("build_dataset first: the booster is fitted on its partitions")
        cuts = dataset.time_split(config.split)
        train_parts = [
            (self.client.submit(slice_rows, built, cuts, 0), int(cuts.masks(times)[0].sum()))
            for built, times in zip(self._built, self._times, strict=True)
        ]
        validation = split.validation
        return fit_dask_booster(
            self.client,
            train_parts,
            (validation.X, validation.y, validation.w),
            list(dataset.feature_names),
            config,
            progress=progress,
        )
