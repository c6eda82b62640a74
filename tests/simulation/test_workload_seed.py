"""The ``seed`` workload against the Go simulator's rules, checked from the events alone."""

from __future__ import annotations

import bisect
import itertools
import math
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence

import pytest

from features.events import UserActivity, UserConnect, UserDisconnect, UserEvent
from simulation.workloads import (
    DEFAULT_START,
    UnknownWorkload,
    UserKind,
    generate,
    population,
)
from simulation.workloads.seed import SEED_PARAMS, SeedParams, seed_population, seed_workload

SEED = 11
DAY_H = 24.0


@pytest.fixture(scope="module")
def day() -> list[UserEvent]:
    return list(seed_workload(hours=DAY_H, seed=SEED))


def ms(ts: float) -> int:
    """Milliseconds after the default start."""
    return round((ts - DEFAULT_START) * 1000)


def test_params_are_the_go_simulators() -> None:
    p = SEED_PARAMS
    assert (p.users, p.fast_users, p.slow_users) == (50, 3, 17)
    assert p.activity_delay_ms == (300, 1299)
    assert (p.recent_activity_s, p.check_interval_s) == (30, 5)
    assert (p.fast_wait_s, p.slow_wait_s) == ((5, 34), (15, 74))
    assert (p.fast_session_s, p.slow_session_s) == ((60, 179), (180, 599))
    assert p.rest_s == (60, 239)


def test_population_kinds_and_ids() -> None:
    users = seed_population(SEED)
    kinds = Counter(user.kind for user in users)
    assert kinds == {UserKind.FAST: 3, UserKind.SLOW: 17, UserKind.BROWSE: 30}
    assert len({user.user_id for user in users}) == 50
    assert all(uuid.UUID(user.user_id).version == 4 for user in users)
    assert seed_population(SEED) == users
    assert {u.user_id for u in seed_population(SEED + 1)}.isdisjoint(u.user_id for u in users)
    assert population("seed", seed=SEED) == users


def test_population_scales_in_proportion() -> None:
    kinds = Counter(user.kind for user in seed_population(SEED, users=100))
    assert kinds == {UserKind.FAST: 6, UserKind.SLOW: 34, UserKind.BROWSE: 60}
    assert Counter(u.kind for u in seed_population(SEED, users=1)) == {UserKind.BROWSE: 1}


def test_sorted_within_window_and_only_population_users(day: list[UserEvent]) -> None:
    times = [event.ts for event in day]
    assert times == sorted(times)
    assert times[0] >= DEFAULT_START and times[-1] < DEFAULT_START + DAY_H * 3600
    ids = {user.user_id for user in seed_population(SEED)}
    assert {event.user_id for event in day} == ids


def test_activity_gaps_are_whole_ms_within_range(day: list[UserEvent]) -> None:
    activity = [event for event in day if isinstance(event, UserActivity)]
    assert all(abs(e.ts * 1000 - round(e.ts * 1000)) < 1e-3 for e in activity)
    assert all(e.timestamp == math.floor(e.ts) for e in activity)
    offsets = [0] + [ms(e.ts) for e in activity]
    gaps = [b - a for a, b in itertools.pairwise(offsets)]
    low, high = SEED_PARAMS.activity_delay_ms
    assert min(gaps) >= low and max(gaps) <= high
    # Uniform gaps: the mean is near the middle of the range, and both ends are reached.
    assert abs(sum(gaps) / len(gaps) - (low + high) / 2) < 5
    assert min(gaps) < low + 10 and max(gaps) > high - 10


def test_activity_picks_users_uniformly(day: list[UserEvent]) -> None:
    counts = Counter(event.user_id for event in day if isinstance(event, UserActivity))
    total = sum(counts.values())
    expected = total / 50
    sd = math.sqrt(expected)
    assert len(counts) == 50
    assert all(abs(n - expected) < 5 * sd for n in counts.values())


def test_browse_only_users_never_connect(day: list[UserEvent]) -> None:
    browse = {u.user_id for u in seed_population(SEED) if u.kind is UserKind.BROWSE}
    connecting = {e.user_id for e in day if isinstance(e, UserConnect | UserDisconnect)}
    assert connecting
    assert connecting.isdisjoint(browse)


def explain_connect(
    connect: int,
    previous_disconnect: int | None,
    activity: Sequence[int],
    wait_s: tuple[int, int],
    params: SeedParams = SEED_PARAMS,
) -> bool:
    """Whether a user loop can produce ``connect`` (ms) after ``previous_disconnect``.

    The loop rests (or starts at 0), checks for activity every 5 s until it finds some less
    than 30 s old (activity at the same instant counts: that process runs first), waits,
    and connects. ``activity`` is the user's sorted activity times in ms.
    """
    recent, step = params.recent_activity_s * 1000, params.check_interval_s * 1000

    def any_in(low: int, high: int) -> bool:  # activity in (low, high]
        return bisect.bisect_right(activity, high) > bisect.bisect_right(activity, low)

    for wait in range(wait_s[0], wait_s[1] + 1):
        ready = connect - wait * 1000  # the successful check
        if not any_in(ready - recent, ready):
            continue
        if previous_disconnect is None:
            first = 0 if ready >= 0 and ready % step == 0 else None
        else:
            earliest = previous_disconnect + params.rest_s[0] * 1000
            latest = previous_disconnect + params.rest_s[1] * 1000
            if ready < earliest:
                continue
            first = latest - (latest - ready) % step if ready > latest else ready
            first = first if first >= earliest else None
        if first is None:
            continue
        # Checks first, first + 5 s, ..., ready - 5 s all failed: no activity in their windows.
        if first == ready or not any_in(first - recent, ready - step):
            return True
    return False


def sessions_by_user(events: Sequence[UserEvent]) -> dict[str, list[tuple[int, int | None]]]:
    """(connect, disconnect or None) in ms per user; asserts they alternate."""
    sessions: dict[str, list[tuple[int, int | None]]] = defaultdict(list)
    open_at: dict[str, int] = {}
    for event in events:
        if isinstance(event, UserConnect):
            assert event.user_id not in open_at, "connect while connected"
            open_at[event.user_id] = ms(event.ts)
        elif isinstance(event, UserDisconnect):
            assert event.user_id in open_at, "disconnect while not connected"
            sessions[event.user_id].append((open_at.pop(event.user_id), ms(event.ts)))
    for user_id, connect in open_at.items():
        sessions[user_id].append((connect, None))
    return sessions


def test_explain_connect_rejects_what_the_loop_cannot_do() -> None:
    activity = [12_000]
    # Start: check at 0 fails, at 5 s fails, at 10 s fails, at 15 s sees the 12 s activity.
    assert explain_connect(15_000 + 5_000, None, activity, (5, 34))
    assert not explain_connect(15_000 + 4_000, None, activity, (5, 34))  # wait too short
    assert not explain_connect(13_000 + 5_000, None, activity, (5, 34))  # off the 5 s grid
    # After a disconnect at 100 s: rest >= 60 s, so no connect before 165 s.
    assert not explain_connect(164_000, 100_000, [150_000], (5, 34))
    assert explain_connect(165_000, 100_000, [150_000], (5, 34))


def test_sessions_waits_and_rests_follow_the_loop(day: list[UserEvent]) -> None:
    users = {u.user_id: u.kind for u in seed_population(SEED)}
    activity: dict[str, list[int]] = defaultdict(list)
    for event in day:
        if isinstance(event, UserActivity):
            activity[event.user_id].append(ms(event.ts))
    sessions = sessions_by_user(day)
    p = SEED_PARAMS
    assert {users[u] for u in sessions} == {UserKind.FAST, UserKind.SLOW}
    for user_id, spans in sessions.items():
        fast = users[user_id] is UserKind.FAST
        length_s = p.fast_session_s if fast else p.slow_session_s
        wait_s = p.fast_wait_s if fast else p.slow_wait_s
        previous: int | None = None
        for connect, disconnect in spans:
            assert connect % 1000 == 0
            assert explain_connect(connect, previous, activity[user_id], wait_s), (
                user_id,
                connect,
            )
            if disconnect is None:  # open at the end: its disconnect falls after the window
                assert connect + length_s[1] * 1000 >= DAY_H * 3600 * 1000
                break
            length = disconnect - connect
            assert length % 1000 == 0
            assert length_s[0] * 1000 <= length <= length_s[1] * 1000
            previous = disconnect


def test_session_lengths_cover_their_ranges(day: list[UserEvent]) -> None:
    users = {u.user_id: u.kind for u in seed_population(SEED)}
    lengths: dict[UserKind, list[int]] = defaultdict(list)
    for user_id, spans in sessions_by_user(day).items():
        lengths[users[user_id]] += [(d - c) // 1000 for c, d in spans if d is not None]
    fast, slow = lengths[UserKind.FAST], lengths[UserKind.SLOW]
    assert abs(sum(fast) / len(fast) - sum(SEED_PARAMS.fast_session_s) / 2) < 10
    assert abs(sum(slow) / len(slow) - sum(SEED_PARAMS.slow_session_s) / 2) < 15


def expected_connects_per_hour(params: SeedParams = SEED_PARAMS) -> float:
    """Each loop's mean cycle, with per-user activity taken as Poisson (1 in 50 of the stream).

    After the rest, check k (k = 1, 2, ...) fails when nothing came in the 30 s before the
    first check nor in the 5 s steps since: P = exp(-rate * (30 + 5 (k - 1))).
    """
    mean_delay_s = sum(params.activity_delay_ms) / 2 / 1000
    rate = 1 / (mean_delay_s * params.users)
    recent, step = params.recent_activity_s, params.check_interval_s
    failed_checks = sum(math.exp(-rate * (recent + step * k)) for k in range(2000))
    activity_wait = step * failed_checks

    def mean(bounds: tuple[int, int]) -> float:
        return sum(bounds) / 2

    rest = mean(params.rest_s) + activity_wait
    fast_cycle = rest + mean(params.fast_wait_s) + mean(params.fast_session_s)
    slow_cycle = rest + mean(params.slow_wait_s) + mean(params.slow_session_s)
    return 3600 * (params.fast_users / fast_cycle + params.slow_users / slow_cycle)


def test_connects_per_hour_match_the_loops(day: list[UserEvent]) -> None:
    connects = sum(isinstance(event, UserConnect) for event in day)
    expected = expected_connects_per_hour()
    assert 110 < expected < 160  # the model itself is sane: ~136 an hour
    assert abs(connects / DAY_H - expected) < 0.08 * expected


def test_deterministic_per_seed() -> None:
    first = list(seed_workload(hours=1, seed=5))
    assert first == list(seed_workload(hours=1, seed=5))
    assert first != list(seed_workload(hours=1, seed=6))


def test_shorter_window_is_a_prefix(day: list[UserEvent]) -> None:
    two_hours = list(seed_workload(hours=2, seed=SEED))
    assert two_hours == [e for e in day if e.ts < DEFAULT_START + 2 * 3600]


def test_start_shifts_the_window() -> None:
    start = DEFAULT_START + 3 * 86400 + 0.5
    shifted = list(seed_workload(hours=1, seed=SEED, start=start))
    base = list(seed_workload(hours=1, seed=SEED))
    assert len(shifted) == len(base)
    shift = start - DEFAULT_START
    assert all(abs(a.ts - b.ts - shift) < 1e-6 for a, b in zip(shifted, base, strict=True))
    assert start <= shifted[0].ts and shifted[-1].ts < start + 3600


def test_registry_and_bad_input() -> None:
    assert list(generate("seed", hours=0.5, seed=3)) == list(seed_workload(hours=0.5, seed=3))
    with pytest.raises(UnknownWorkload, match="seed, habits"):
        generate("nope", hours=1, seed=1)
    for hours in (0, -1, math.nan):
        with pytest.raises(ValueError, match="hours"):
            generate("seed", hours=hours, seed=1)
    with pytest.raises(ValueError, match="start"):
        generate("seed", hours=1, seed=1, start=math.inf)
    with pytest.raises(ValueError, match="users"):
        generate("seed", hours=1, seed=1, users=0)


def test_unbounded_run_is_lazy() -> None:
    events = seed_workload(hours=math.inf, seed=SEED)
    head = [next(events) for _ in range(1000)]
    assert head == list(seed_workload(hours=1, seed=SEED))[:1000]
