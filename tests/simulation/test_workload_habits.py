"""The ``habits`` workload: its guarantees, and the habits that make users predictable."""

from __future__ import annotations

import bisect
import itertools
import math
import statistics
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import replace

import pytest

from features.events import UserActivity, UserConnect, UserDisconnect, UserEvent
from simulation.workloads import DEFAULT_START, UserKind, generate, population
from simulation.workloads.habits import habits_workload
from simulation.workloads.habits_params import HABITS_PARAMS, HabitsParams
from simulation.workloads.personas import Persona, habits_population
from simulation.workloads.planner import weekday
from tests.simulation.workload_checks import check_every_field_documented, sessions_by_user

SEED = 5
USERS = 300
WEEK_H = 7 * 24.0


@pytest.fixture(scope="module")
def personas() -> dict[str, Persona]:
    return {p.user_id: p for p in habits_population(SEED, USERS)}


@pytest.fixture(scope="module")
def week() -> list[UserEvent]:
    return list(habits_workload(hours=WEEK_H, seed=SEED, users=USERS))


def hour_of(ts: float) -> float:
    return (ts % 86400) / 3600


def is_weekend(ts: float) -> bool:
    return weekday(math.floor(ts / 86400)) >= 5


def test_weekday_of_the_default_start_is_monday() -> None:
    day = math.floor(DEFAULT_START / 86400)
    assert weekday(day) == 0 and weekday(day + 5) == 5 and weekday(day + 7) == 0


def test_population_mix_and_ids() -> None:
    everyone = habits_population(SEED)
    assert len(everyone) == HABITS_PARAMS.users == 1000
    kinds = Counter(p.kind for p in everyone)
    assert kinds == {UserKind.ROUTINE: 550, UserKind.SPORADIC: 150, UserKind.BROWSE: 300}
    assert len({p.user_id for p in everyone}) == 1000
    assert all(uuid.UUID(p.user_id).version == 4 for p in everyone)
    # Kinds are shuffled among the users, not in blocks.
    assert len({p.kind for p in everyone[:20]}) >= 2
    assert habits_population(SEED) == everyone
    assert [p.user for p in everyone] == list(population("habits", seed=SEED))
    routine = [p for p in everyone if p.kind is UserKind.ROUTINE]
    evening = sum(p.evening for p in routine) / len(routine)
    assert 0.08 < evening < 0.25
    for p in routine:
        low, high = (18, 23) if p.evening else (7, 11)
        assert low * 3600 <= p.usual_start_s <= high * 3600
        assert 1 <= p.sessions_per_day <= 3
        assert 25 * 60 <= p.session_median_s <= 180 * 60
        assert (p.lunch_break_s == 0) == p.evening
    assert all(0.1 <= p.day_p <= 0.5 for p in everyone if p.kind is UserKind.SPORADIC)
    assert all(60 <= p.lead_s <= 300 for p in everyone)


def test_deterministic_per_seed() -> None:
    first = list(habits_workload(hours=24, seed=3, users=60))
    assert first == list(habits_workload(hours=24, seed=3, users=60))
    assert first != list(habits_workload(hours=24, seed=4, users=60))
    assert first == list(generate("habits", hours=24, seed=3, users=60))


def test_shorter_window_is_a_prefix(week: list[UserEvent]) -> None:
    two_days = list(habits_workload(hours=48, seed=SEED, users=USERS))
    assert two_days == [e for e in week if e.ts < DEFAULT_START + 48 * 3600]


def test_sorted_whole_ms_and_within_window(week: list[UserEvent]) -> None:
    times = [e.ts for e in week]
    assert times == sorted(times)
    assert times[0] >= DEFAULT_START and times[-1] < DEFAULT_START + WEEK_H * 3600
    assert all(abs(t * 1000 - round(t * 1000)) < 1e-3 for t in times)
    activity = [e for e in week if isinstance(e, UserActivity)]
    assert all(e.timestamp == math.floor(e.ts) for e in activity)


def test_sessions_alternate_and_never_overlap(
    week: list[UserEvent], personas: dict[str, Persona]
) -> None:
    sessions = sessions_by_user(week)  # asserts alternation
    end = DEFAULT_START + WEEK_H * 3600
    gap = HABITS_PARAMS.min_session_gap_s
    low, high = HABITS_PARAMS.session_bounds_s
    for spans in sessions.values():
        for (_, disconnect), (connect, _) in itertools.pairwise(spans):
            assert disconnect is not None and connect - disconnect >= gap - 1e-3
        for connect, disconnect in spans:
            if disconnect is None:
                assert connect + high >= end
            else:
                assert low - 1e-3 <= disconnect - connect <= high + 1e-3
    assert sum(1 for spans in sessions.values() for _, d in spans if d is None) < 30


def test_browse_only_users_never_connect(
    week: list[UserEvent], personas: dict[str, Persona]
) -> None:
    connecting = {e.user_id for e in week if isinstance(e, UserConnect | UserDisconnect)}
    kinds = {personas[u].kind for u in connecting}
    assert kinds == {UserKind.ROUTINE, UserKind.SPORADIC}
    browsing = {e.user_id for e in week if personas[e.user_id].kind is UserKind.BROWSE}
    assert len(browsing) == sum(p.kind is UserKind.BROWSE for p in personas.values())


def test_more_connects_on_weekday_days_than_at_night_or_weekends(
    week: list[UserEvent],
) -> None:
    connects = [e.ts for e in week if isinstance(e, UserConnect)]
    weekday_day = sum(1 for t in connects if not is_weekend(t) and 8 <= hour_of(t) < 17) / (5 * 9)
    weekday_night = sum(1 for t in connects if not is_weekend(t) and hour_of(t) < 5) / (5 * 5)
    weekend_day = sum(1 for t in connects if is_weekend(t) and 8 <= hour_of(t) < 17) / (2 * 9)
    assert weekday_day > 5 * weekday_night
    assert weekday_day > 3 * weekend_day
    per_day = Counter(math.floor(t / 86400) for t in connects)
    weekdays = [n for d, n in per_day.items() if weekday(d) < 5]
    weekends = [n for d, n in per_day.items() if weekday(d) >= 5]
    assert min(weekdays) > 3 * max(weekends)


def test_browsing_follows_the_day_and_the_week(
    week: list[UserEvent], personas: dict[str, Persona]
) -> None:
    browse = [e.ts for e in week if personas[e.user_id].kind is UserKind.BROWSE]
    day = sum(1 for t in browse if not is_weekend(t) and 9 <= hour_of(t) < 17) / (5 * 8)
    night = sum(1 for t in browse if not is_weekend(t) and 1 <= hour_of(t) < 5) / (5 * 4)
    weekend = sum(1 for t in browse if is_weekend(t)) / 2
    weekday_total = sum(1 for t in browse if not is_weekend(t)) / 5
    assert day > 4 * night
    assert weekday_total > 1.4 * weekend


def test_every_connect_follows_a_burst(week: list[UserEvent]) -> None:
    activity: dict[str, list[float]] = defaultdict(list)
    for event in week:
        if isinstance(event, UserActivity):
            activity[event.user_id].append(event.ts)
    connects = [e for e in week if isinstance(e, UserConnect)]
    assert len(connects) > 500
    window = HABITS_PARAMS.lead_s[1]
    for event in connects:
        times = activity[event.user_id]
        before = bisect.bisect_left(times, event.ts) - bisect.bisect_left(times, event.ts - window)
        assert before >= HABITS_PARAMS.burst_min_events, event
    # Bursts are dense: the mean count over the 5 min before a connect is well above sparse.
    counts = [
        bisect.bisect_left(activity[e.user_id], e.ts)
        - bisect.bisect_left(activity[e.user_id], e.ts - window)
        for e in connects
    ]
    assert statistics.mean(counts) > 6


def test_connecting_users_also_burst_without_connecting(
    week: list[UserEvent], personas: dict[str, Persona]
) -> None:
    """Activity that leads nowhere: routine users' activity more than 10 min from any connect."""
    sessions = sessions_by_user(week)
    starts = {u: sorted(c for c, _ in spans) for u, spans in sessions.items()}
    idle: Counter[str] = Counter()
    for event in week:
        if isinstance(event, UserActivity) and personas[event.user_id].kind is UserKind.ROUTINE:
            times = starts.get(event.user_id, [])
            i = bisect.bisect_left(times, event.ts)
            near = i < len(times) and times[i] - event.ts < 600
            inside = any(
                c <= event.ts and (d is None or event.ts <= d)
                for c, d in sessions.get(event.user_id, [])
            )
            if not near and not inside:
                idle[event.user_id] += 1
    routine = sum(p.kind is UserKind.ROUTINE for p in personas.values())
    per_user_day = sum(idle.values()) / routine / 7
    assert per_user_day > 5  # 1-2 bursts of ~3-30 events a day, plus background


def test_routine_users_keep_their_start_time(
    week: list[UserEvent], personas: dict[str, Persona]
) -> None:
    """The habit a model can learn: the first connect of a weekday is near the usual start."""
    jitter = 3 * HABITS_PARAMS.start_jitter_s
    near = far = 0
    for user_id, spans in sessions_by_user(week).items():
        persona = personas[user_id]
        if persona.kind is not UserKind.ROUTINE or persona.evening:
            continue
        first_by_day: dict[int, float] = {}
        for connect, _ in spans:
            first_by_day.setdefault(math.floor(connect / 86400), connect)
        for day, connect in first_by_day.items():
            if weekday(day) >= 5:
                continue
            if abs(connect - day * 86400 - persona.usual_start_s) <= jitter + 1:
                near += 1
            else:
                far += 1
    assert near > 0.95 * (near + far)


def test_routine_users_work_most_weekdays(
    week: list[UserEvent], personas: dict[str, Persona]
) -> None:
    worked: dict[str, set[int]] = defaultdict(set)
    for e in week:
        if isinstance(e, UserConnect) and personas[e.user_id].kind is UserKind.ROUTINE:
            worked[e.user_id].add(math.floor(e.ts / 86400))
    day_users = [p for p in personas.values() if p.kind is UserKind.ROUTINE and not p.evening]
    weekdays = [sum(weekday(d) < 5 for d in worked[p.user_id]) for p in day_users]
    assert statistics.mean(weekdays) > 4.5
    sessions = sessions_by_user(week)
    lengths: dict[UserKind, list[float]] = defaultdict(list)
    for user_id, spans in sessions.items():
        lengths[personas[user_id].kind] += [d - c for c, d in spans if d is not None]
    assert statistics.median(lengths[UserKind.SPORADIC]) < statistics.median(
        lengths[UserKind.ROUTINE]
    )


def test_window_starting_mid_day_has_no_orphan_disconnect() -> None:
    start = DEFAULT_START + 10.5 * 3600  # Monday 10:30, when many routine users are working
    events = list(habits_workload(hours=6, seed=SEED, users=USERS, start=start))
    assert events[0].ts >= start
    sessions_by_user(events)  # a disconnect of a session begun before the start would fail


def test_bad_params_are_refused() -> None:
    for bad in (
        {"routine_share": 0.8, "sporadic_share": 0.3},
        {"lead_s": (300.0, 60.0)},
        {"day_start_hours": (7.0, 24.0)},
        {"hourly_profile": (1.0,) * 23},
        {"skip_day_prob": (0.0, 1.5)},
        {"users": 0},
    ):
        with pytest.raises(ValueError):
            replace(HABITS_PARAMS, **bad)
    with pytest.raises(ValueError, match="hourly"):
        replace(HABITS_PARAMS, hourly_profile=(0.0,) * 24)
    assert HabitsParams(users=10).kind_counts() == (6, 2, 2)


def test_every_parameter_is_documented() -> None:
    check_every_field_documented(HabitsParams)


def test_unbounded_run_is_lazy() -> None:
    events = habits_workload(hours=math.inf, seed=SEED, users=50)
    head = [next(events) for _ in range(2000)]
    assert head == list(habits_workload(hours=72, seed=SEED, users=50))[:2000]


def test_a_week_of_a_thousand_users() -> None:
    started = time.perf_counter()
    count = connects = 0
    last = -math.inf
    users: set[str] = set()
    for event in habits_workload(hours=WEEK_H, seed=SEED):
        assert event.ts >= last
        last = event.ts
        count += 1
        connects += isinstance(event, UserConnect)
        users.add(event.user_id)
    elapsed = time.perf_counter() - started
    assert len(users) == 1000
    assert count > 100_000 and connects > 3000
    print(f"habits 7 d x 1000 users: {count} events, {connects} connects in {elapsed:.2f} s")
