"""The training rows built on a Dask cluster, user partition by user partition.

The events come to the workers one of two ways: the driver splits its event table by user
(``features.partitions.user_partition``, the function of the partitioned export) and
scatters a table per partition; or the workers have read a partitioned export themselves
(``training.export_on_workers``). Each worker builds its partitions' rows with
``training.dataset.build_dataset``: the same cutoffs, features and labels as on one
machine. A partition's rows depend on its users' events only (a user's quiet rows take a
phase of its id) and end where the whole table ends (``last_event_ms``), so they are
exactly the single-machine rows of its users. A partition numbers its users in their
sorted order; merged by time, then user (numbered among all the users by their ids, as an
``EventTable`` does), the rows are the single-machine dataset, row for row, and the time
split cuts them at the same places.

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
from training.sources import WorkerEvents
from training.train import Rows, StageProgress, TrainConfig

if TYPE_CHECKING:
    from distributed import Client, Future

PartitionProgress = Callable[[int, int], None]
"""``progress(partitions_built, partitions)``."""


def user_partitions(table: EventTable, partitions: int) -> list[EventTable]:
    """The events of each user partition, in time order, each numbering its own users in
    ``table``'s order (sorted, for a table from ``EventTable.from_codes``)."""
    of_user = np.fromiter(
        (user_partition(user_id, partitions) for user_id in table.user_ids),
        dtype=np.int64,
        count=table.n_users,
    )
    of_event = of_user[table.user] if len(table) else np.empty(0, dtype=np.int64)
    local = np.zeros(table.n_users, dtype=np.int32)  # each user's number in its partition
    parts = []
    for k in range(partitions):
        users = np.flatnonzero(of_user == k)
        local[users] = np.arange(len(users), dtype=np.int32)
        mine = of_event == k
        parts.append(
            EventTable(
                table.ts_ms[mine],
                table.kind[mine],
                local[table.user[mine]],
                tuple(table.user_ids[u] for u in users.tolist()),
            )
        )
    return parts


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
    part_users: Sequence[Sequence[str]],
    user_ids: Sequence[str],
    event_range: tuple[float, float],
    spec: DatasetSpec,
) -> Dataset:
    """The rows of all ``parts`` in ``build_dataset``'s order (by time, then user), as the
    dataset of the events of all ``user_ids`` (which run from ``event_range``). ``keys``
    are the parts' :func:`row_keys` and ``part_users`` their users, in the same order; a
    part's user numbers are mapped to the places of its users in ``user_ids``. The merged
    rows' places are known before any part's features arrive, so each part is copied to
    its places and can be let go (``parts`` may yield them one by one): no concatenated or
    reordered copy of the features."""
    code_of = {user_id: code for code, user_id in enumerate(user_ids)}
    t_ms = np.concatenate([t for t, _ in keys]) if keys else np.empty(0, dtype=np.int64)
    user = np.empty(len(t_ms), dtype=np.int32)
    start = 0
    for (part_t_ms, part_user), users in zip(keys, part_users, strict=True):
        codes = np.fromiter((code_of[u] for u in users), dtype=np.int32, count=len(users))
        user[start : start + len(part_t_ms)] = codes[part_user]
        start += len(part_t_ms)
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
        event_range,
        user_ids=tuple(user_ids),
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
        events: EventTable | WorkerEvents,
        spec: DatasetSpec,
        *,
        rows_since: float | None = None,
        progress: PartitionProgress | None = None,
    ) -> Dataset:
        """The dataset of ``events``, its rows built per user partition on the workers: a
        table here is split into ``partitions`` and sent; events the workers read
        (``training.export_on_workers``) are built where they are, a task per partition."""
        from distributed import as_completed

        report = progress or (lambda done, total: None)
        if isinstance(events, WorkerEvents):
            on_workers = list(events.parts)
            part_users = [s.user_ids for s in events.summaries]
            user_ids, event_range = events.user_ids, events.event_range
            last_event_ms = events.last_ms
        else:
            split = user_partitions(events, self.partitions)
            part_users = [part.user_ids for part in split]
            user_ids, event_range = events.user_ids, event_range_of(events)
            last_event_ms = int(events.ts_ms[-1]) if len(events) else 0
            on_workers = self.client.scatter(split)
            del split
        futures = [
            self.client.submit(build_partition, part, spec, rows_since, last_event_ms)
            for part in on_workers
        ]
        report(0, len(futures))
        for done, _ in enumerate(as_completed(futures), start=1):
            report(done, len(futures))
        keys = self.client.gather([self.client.submit(row_keys, built) for built in futures])
        self._built = futures
        self._times = [t_ms for t_ms, _ in keys]
        # One partition's rows come over at a time, each let go once merged.
        parts = (self.client.gather(built) for built in futures)
        return merge_partitions(parts, keys, part_users, user_ids, event_range, spec)

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
