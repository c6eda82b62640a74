from __future__ import annotations

import numpy as np
import pytest

from features.definitions import FEATURE_NAMES
from features.events import Event, UserActivity, UserConnect, UserDisconnect
from features.table import EventTable
from simulation.workloads import generate
from training.dataset import DatasetSpec, build_dataset, cutoffs, quiet_phases

T0 = 1_732_492_800.0


def brute_force_cutoffs(table: EventTable, spec: DatasetSpec) -> set[tuple[int, int, float]]:
    every, quiet = int(spec.every_s * 1000), int(spec.quiet_after_s * 1000)
    last_grid = (int(table.ts_ms[-1]) - int(spec.horizon_s * 1000)) // every
    rows = set()
    phases = quiet_phases(table.user_ids, spec.quiet_stride)
    for u in range(table.n_users):
        times = table.ts_ms[table.user == u]
        for g in range(-(-int(times[0]) // every), last_grid + 1):
            t = g * every
            latest = times[times <= t].max()
            if t - latest <= quiet:
                rows.add((u, t, 1.0))
            elif (g + phases[u]) % spec.quiet_stride == 0:
                rows.add((u, t, float(spec.quiet_stride)))
    return rows


@pytest.mark.parametrize("workload", ["seed", "habits"])  # habits: quiet rows too
def test_cutoffs_match_the_brute_force_grid(workload: str) -> None:
    events = list(generate(workload, hours=6, seed=3, users=8))
    table = EventTable.from_events(events)
    spec = DatasetSpec(every_s=10, quiet_after_s=120, quiet_stride=4)
    users, t_ms, weights = cutoffs(table, spec)
    got = set(zip(users.tolist(), t_ms.tolist(), weights.tolist(), strict=True))
    assert len(got) == len(users)  # no duplicates
    assert got == brute_force_cutoffs(table, spec)
    assert (workload == "habits") == bool((weights == spec.quiet_stride).any())


def test_a_user_s_rows_depend_on_its_events_alone() -> None:
    table = EventTable.from_events(generate("habits", hours=24, seed=4, users=40))
    spec = DatasetSpec(every_s=30, quiet_after_s=600, quiet_stride=10)
    whole = build_dataset(table, spec)
    assert (whole.w == spec.quiet_stride).sum() > 100
    end = int(table.ts_ms[-1])
    for code in (0, 17, 39):
        alone = EventTable.from_codes(
            table.ts_ms[table.user == code] / 1000,
            table.kind[table.user == code],
            np.zeros(int((table.user == code).sum())),
            [table.user_ids[code]],
        )
        rows = build_dataset(alone, spec, last_event_ms=end)
        mine = whole.user == code
        np.testing.assert_array_equal(rows.t_ms, whole.t_ms[mine])
        np.testing.assert_array_equal(rows.w, whole.w[mine])
        np.testing.assert_array_equal(rows.X, whole.X[mine])


def test_a_table_numbers_its_users_in_their_ids_order() -> None:
    events = list(generate("seed", hours=1, seed=1, users=12))
    forward, backward = EventTable.from_events(events), EventTable.from_events(events[::-1])
    assert forward.user_ids == tuple(sorted(forward.user_ids)) == backward.user_ids
    np.testing.assert_array_equal(np.sort(forward.user), np.sort(backward.user))
    same = [forward.user_ids[u] for u in forward.user]
    assert same == [e.user_id for e in sorted(events, key=lambda e: e.ts)]


def test_labels_and_rows_on_a_hand_made_trace() -> None:
    events: list[Event] = [
        UserActivity(T0 + 1, "a", int(T0 + 1)),
        UserConnect(T0 + 35, "a"),
        UserDisconnect(T0 + 95, "a"),
        UserActivity(T0 + 5, "b", int(T0 + 5)),
        UserActivity(T0 + 200, "b", int(T0 + 200)),
    ]
    data = build_dataset(
        EventTable.from_events(events),
        DatasetSpec(horizon_s=40, every_s=10, quiet_after_s=1000, quiet_stride=1),
    )
    a, b = data.user_ids.index("a"), data.user_ids.index("b")
    rows = {
        (int(u), int(t - T0 * 1000) // 1000): bool(y)
        for u, t, y in zip(data.user, data.t_ms, data.y, strict=True)
    }
    # Data ends at T0+200; labels need 40 s after the cutoff: grid up to T0+160.
    assert max(s for _, s in rows) == 160
    # a is seen from T0+1 (first cutoff T0+10), connected from 35 to 95 (rows 40..90 gone).
    assert sorted(s for u, s in rows if u == a) == [10, 20, 30, *range(100, 161, 10)]
    assert [s for (u, s), y in rows.items() if y] == [10, 20, 30]  # connect at 35 within 40 s
    assert not any(y for (u, _), y in rows.items() if u == b)
    assert data.X.shape == (len(rows), len(FEATURE_NAMES))
    assert np.all(data.X[:, FEATURE_NAMES.index("connected")] == 0)
    assert np.all(np.diff(data.t_ms) >= 0)


def test_split_is_by_time_with_a_purge_gap() -> None:
    table = EventTable.from_events(generate("seed", hours=6, seed=2))
    data = build_dataset(table, DatasetSpec())
    parts = data.split()
    horizon_ms = int(data.spec.horizon_s * 1000)
    assert parts.train.t_ms.max() + horizon_ms < parts.validation.t_ms.min()
    assert parts.validation.t_ms.max() + horizon_ms < parts.test.t_ms.min()
    assert len(parts.train) > len(parts.validation) > 0 and len(parts.test) > 0
    assert parts.train.positives > 0 and parts.test.positives > 0


@pytest.mark.parametrize("horizon_s", [40.0, 4 * 3600.0])
def test_a_split_of_rows_in_time_order_is_views_of_the_mask_s_rows(horizon_s: float) -> None:
    # A 4 h horizon purges the whole 1.2 h validation period of 6 hours: an empty slice.
    table = EventTable.from_events(generate("seed", hours=6, seed=2))
    data = build_dataset(table, DatasetSpec(horizon_s=horizon_s))
    masks = data.time_split().masks(data.t_ms)
    shuffled = data.rows(np.random.default_rng(0).permutation(len(data)))
    names = ("train", "validation", "test")
    for name, mask in zip(names, masks, strict=True):
        part, expected = getattr(data.split(), name), data.rows(mask)
        for column in ("X", "y", "w", "t_ms", "user", "wait_s"):
            np.testing.assert_array_equal(getattr(part, column), getattr(expected, column))
            assert np.shares_memory(getattr(part, column), getattr(data, column)) == bool(len(part))
        # Rows out of time order are picked by mask: the same rows, in their order.
        of_shuffled = getattr(shuffled.split(), name)
        assert sorted(of_shuffled.t_ms.tolist()) == expected.t_ms.tolist()
    assert (len(data.split().validation) == 0) == (horizon_s > 3600)


def test_quiet_rows_are_weighted_samples() -> None:
    table = EventTable.from_events(generate("habits", hours=24, seed=4, users=40))
    full = build_dataset(table, DatasetSpec(every_s=30, quiet_after_s=600, quiet_stride=1))
    sampled = build_dataset(table, DatasetSpec(every_s=30, quiet_after_s=600, quiet_stride=10))
    assert len(sampled) < 0.5 * len(full)
    assert sampled.positives == full.positives  # positives are never quiet here
    assert sampled.w.sum() == pytest.approx(full.w.sum(), rel=0.02)


def test_digest_identifies_the_rows() -> None:
    table = EventTable.from_events(generate("seed", hours=1, seed=1))
    one, two = build_dataset(table), build_dataset(table)
    assert one.digest() == two.digest()
    other = build_dataset(table, DatasetSpec(horizon_s=30))
    assert other.digest() != one.digest()


def test_empty_table_gives_an_empty_dataset() -> None:
    data = build_dataset(EventTable.from_events([]))
    assert len(data) == 0 and data.X.shape == (0, len(FEATURE_NAMES))
