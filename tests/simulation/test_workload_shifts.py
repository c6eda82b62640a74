"""The ``shifts`` workload: its guarantees, and the traits it exists for (long sessions split
by a break, unannounced weekly users, bursts that rarely lead to a connect)."""

from __future__ import annotations

import itertools
import math
import statistics
import uuid
from collections import Counter, defaultdict
from dataclasses import replace

import pytest

from features.events import UserActivity, UserConnect, UserEvent
from simulation.workloads import DEFAULT_START, UserKind, generate, population
from simulation.workloads.planner import weekday
from simulation.workloads.shifts import ShiftsPersona, shifts_population, shifts_workload
from simulation.workloads.shifts_params import SHIFTS_PARAMS, ShiftsParams
from tests.simulation.workload_checks import check_every_field_documented, sessions_by_user

SEED = 4
WEEK_H = 7 * 24.0


@pytest.fixture(scope="module")
def personas() -> dict[str, ShiftsPersona]:
    return {p.user_id: p for p in shifts_population(SEED)}


@pytest.fixture(scope="module")
def week() -> list[UserEvent]:
    return list(shifts_workload(hours=WEEK_H, seed=SEED))


def day_of(ts: float) -> int:
    return math.floor(ts / 86400)


def test_population_mix_and_ids() -> None:
    everyone = shifts_population(SEED)
    assert len(everyone) == SHIFTS_PARAMS.users == 300
    kinds = Counter(p.kind for p in everyone)
    assert kinds == {
        UserKind.SHIFT: 75,
        UserKind.IMPULSE: 60,
        UserKind.WEEKLY: 30,
        UserKind.CASUAL: 135,
    }
    assert len({p.user_id for p in everyone}) == 300
    assert all(uuid.UUID(p.user_id).version == 4 for p in everyone)
    assert len({p.kind for p in everyone[:20]}) >= 2  # shuffled, not in blocks
    assert [p.user for p in everyone] == list(population("shifts", seed=SEED))
    shifts = Counter(p.usual_start_s for p in everyone if p.kind is UserKind.SHIFT)
    assert set(shifts) == {6 * 3600.0, 14 * 3600.0, 22 * 3600.0}
    weekly = [p.usual_start_s for p in everyone if p.kind is UserKind.WEEKLY]
    assert all(8 * 3600 <= s <= 20 * 3600 for s in weekly)
    assert ShiftsParams(users=10).kind_counts() == (2, 2, 1, 5)


def test_deterministic_per_seed_and_a_shorter_window_is_a_prefix(week: list[UserEvent]) -> None:
    two_days = list(shifts_workload(hours=48, seed=SEED))
    assert two_days == [e for e in week if e.ts < DEFAULT_START + 48 * 3600]
    assert two_days == list(generate("shifts", hours=48, seed=SEED))
    assert two_days != list(shifts_workload(hours=48, seed=SEED + 1))


def test_sorted_whole_ms_and_within_window(week: list[UserEvent]) -> None:
    times = [e.ts for e in week]
    assert times == sorted(times)
    assert times[0] >= DEFAULT_START and times[-1] < DEFAULT_START + WEEK_H * 3600
    assert all(abs(t * 1000 - round(t * 1000)) < 1e-3 for t in times)
    assert all(e.timestamp == math.floor(e.ts) for e in week if isinstance(e, UserActivity))


def test_sessions_alternate_and_keep_apart(week: list[UserEvent]) -> None:
    gap = SHIFTS_PARAMS.min_session_gap_s
    for spans in sessions_by_user(week).values():
        for (_, disconnect), (connect, _) in itertools.pairwise(spans):
            assert disconnect is not None and connect - disconnect >= gap - 1e-3


def test_shift_workers_work_weekday_shifts_split_by_a_break(
    week: list[UserEvent], personas: dict[str, ShiftsPersona]
) -> None:
    sessions = sessions_by_user(week)
    shift_users = [p for p in personas.values() if p.kind is UserKind.SHIFT]
    worked: list[float] = []
    days_worked: list[int] = []
    for persona in shift_users:
        by_day: dict[int, list[tuple[float, float | None]]] = defaultdict(list)
        for connect, disconnect in sessions.get(persona.user_id, []):
            # the day its shift started on (a 22 h shift's second session is on the next)
            by_day[day_of(connect - persona.usual_start_s + 12 * 3600)].append(
                (connect, disconnect)
            )
        for day, day_spans in by_day.items():
            assert weekday(day) < 5
            assert len(day_spans) <= 2
            first_connect = day_spans[0][0]
            offset = first_connect - (day_of(first_connect) * 86400 + persona.usual_start_s)
            assert abs(offset) <= 3 * SHIFTS_PARAMS.start_jitter_s + 1
            if len(day_spans) == 2 and day_spans[1][1] is not None:
                (c1, d1), (c2, d2) = day_spans
                assert d1 is not None and d2 is not None
                assert 30 * 60 - 1e-3 <= c2 - d1 <= 60 * 60 + 1e-3
                worked.append((d1 - c1 + d2 - c2) / 3600)
        days_worked.append(len(by_day))
    assert max(days_worked) == 5 and statistics.mean(days_worked) > 4.3  # few skipped days
    assert all(2 - 1e-6 <= h <= 6 + 1e-6 for h in worked)
    assert 3.5 < statistics.mean(worked) < 4.5


def test_activity_comes_minutes_before_a_shift_and_never_before_a_weekly_session(
    week: list[UserEvent], personas: dict[str, ShiftsPersona]
) -> None:
    activity: dict[str, list[float]] = defaultdict(list)
    for e in week:
        if isinstance(e, UserActivity):
            activity[e.user_id].append(e.ts)
    shift_leads, last_minute, weekly_recent = [], 0, 0
    for e in week:
        if not isinstance(e, UserConnect):
            continue
        kind = personas[e.user_id].kind
        before = [e.ts - t for t in activity[e.user_id] if e.ts - 300 <= t < e.ts]
        if kind is UserKind.SHIFT:
            assert len(before) >= 2
            shift_leads.append(len(before))
            last_minute += min(before) < 60  # only background activity, by chance
        elif kind is UserKind.WEEKLY:
            weekly_recent += bool(before)
    assert 2 <= statistics.mean(shift_leads) <= 5
    assert last_minute <= 0.05 * len(shift_leads)
    assert weekly_recent <= 3


def test_weekly_users_connect_on_mondays_and_thursdays_only(
    week: list[UserEvent], personas: dict[str, ShiftsPersona]
) -> None:
    days = Counter(
        weekday(day_of(e.ts))
        for e in week
        if isinstance(e, UserConnect) and personas[e.user_id].kind is UserKind.WEEKLY
    )
    assert set(days) == {0, 3} and days[0] == days[3] == 30
    lengths = [
        d - c
        for user, spans in sessions_by_user(week).items()
        if personas[user].kind is UserKind.WEEKLY
        for c, d in spans
        if d is not None
    ]
    assert all(3600 - 1e-3 <= length <= 7200 + 1e-3 for length in lengths)


def test_impulsive_bursts_connect_often_casual_ones_rarely(
    week: list[UserEvent], personas: dict[str, ShiftsPersona]
) -> None:
    connects = Counter(personas[e.user_id].kind for e in week if isinstance(e, UserConnect))
    users = Counter(p.kind for p in personas.values())
    per_impulsive = connects[UserKind.IMPULSE] / users[UserKind.IMPULSE]
    per_casual = connects[UserKind.CASUAL] / users[UserKind.CASUAL]
    assert 10 < per_impulsive < 25  # 1.5-4 bursts a day, 60 % connect, over 7 days
    assert 0.3 < per_casual < 2  # 3-8 bursts a weekday, 3 % connect
    lengths = [
        d - c
        for user, spans in sessions_by_user(week).items()
        if personas[user].kind in (UserKind.IMPULSE, UserKind.CASUAL)
        for c, d in spans
        if d is not None
    ]
    assert 20 * 60 < statistics.median(lengths) < 30 * 60


def test_multi_hour_sessions_hold_most_of_the_user_time(
    week: list[UserEvent], personas: dict[str, ShiftsPersona]
) -> None:
    time_by_kind: dict[UserKind, float] = defaultdict(float)
    for user, spans in sessions_by_user(week).items():
        for c, d in spans:
            time_by_kind[personas[user].kind] += ((d if d is not None else c) - c) / 3600
    assert time_by_kind[UserKind.SHIFT] > 0.6 * sum(time_by_kind.values())
    connects = sum(1 for e in week if isinstance(e, UserConnect))
    assert 1300 < connects < 1800


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"users": 0}, "users"),
        ({"shift_share": 0.6, "impulse_share": 0.5}, "shares"),
        ({"shift_starts_h": (24.0,)}, "shift_starts_h"),
        ({"weekly_days": (7,)}, "weekly_days"),
        ({"casual_connect_prob": 1.5}, "casual_connect_prob"),
        ({"lead_gap_s": 200.0}, "lead_gap_s"),
        ({"shift_work_h": (6.0, 2.0)}, "shift_work_h"),
        ({"hourly_profile": (1.0,) * 23}, "24"),
    ],
)
def test_bad_parameters_are_refused(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        replace(SHIFTS_PARAMS, **change)  # type: ignore[arg-type]


def test_every_parameter_is_documented_in_the_code_and_the_guide() -> None:
    check_every_field_documented(ShiftsParams)
