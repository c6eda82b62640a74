"""The churn workload: a habits population of about ``users`` people at any time, a cohort
arriving each day and leaving for good two days later, sessions well formed throughout."""

from __future__ import annotations

import itertools
from collections import defaultdict

import pytest

from features.events import UserConnect, UserDisconnect
from simulation.workloads import DEFAULT_START, generate, population
from simulation.workloads.base import DAY_S
from simulation.workloads.churn import CHURN_LIFETIME_DAYS, cohort_seed
from simulation.workloads.personas import habits_population
from tests.simulation.workload_checks import sessions_by_user

DAYS = 6


def test_cohorts_come_and_leave_for_good() -> None:
    events = list(generate("churn", hours=24 * DAYS, seed=5, users=200))
    assert [e.ts for e in events] == sorted(e.ts for e in events)
    sessions_by_user(events)  # connects and disconnects alternate, per user
    days: dict[int, set[str]] = defaultdict(set)
    for event in events:
        days[int((event.ts - DEFAULT_START) // DAY_S)].add(event.user_id)
    # about 200 people a day (a few more: sessions of a cohort that left run past midnight)
    assert all(150 <= len(days[d]) <= 215 for d in range(DAYS)), [len(days[d]) for d in days]
    # who was there on day 0 is gone by day CHURN_LIFETIME_DAYS + 1 (late disconnects aside)
    assert not days[0] & days[CHURN_LIFETIME_DAYS + 1]
    # each day brings new people
    for day in range(1, DAYS):
        assert len(days[day] - set().union(*(days[d] for d in range(day)))) >= 60
    assert {u.user_id for u in population("churn", seed=5, users=200)} >= days[0]


def test_departures_end_open_sessions_and_nothing_else() -> None:
    """After its cohort's departure a user only disconnects, once for each session open
    then, and every departed user's sessions are closed."""
    events = list(generate("churn", hours=24 * 4, seed=2, users=100))
    by_user = sessions_by_user(events)
    first = int(DEFAULT_START // DAY_S)
    leave_at: dict[str, float] = {}
    for cohort in range(first - CHURN_LIFETIME_DAYS + 1, first + 2):  # gone within 4 days
        for persona in habits_population(cohort_seed(2, cohort), 50):
            leave_at[persona.user_id] = float((cohort + CHURN_LIFETIME_DAYS) * DAY_S)
    late = [e for e in events if e.user_id in leave_at and e.ts >= leave_at[e.user_id]]
    assert late, "some sessions run past their cohort's midnight departure"
    assert all(isinstance(e, UserDisconnect) for e in late)
    for user in {e.user_id for e in late}:
        assert by_user[user][-1][1] is not None  # closed
        open_at_departure = [c for c, d in by_user[user] if c < leave_at[user] <= (d or 0.0)]
        assert len(open_at_departure) == sum(e.user_id == user for e in late)
    connects = sum(isinstance(e, UserConnect) for e in events)
    disconnects = sum(isinstance(e, UserDisconnect) for e in events)
    assert connects - disconnects == sum(s[-1][1] is None for s in by_user.values())


def test_endless_generation_is_lazy() -> None:
    stream = generate("churn", hours=float("inf"), seed=1, users=50)
    first = list(itertools.islice(stream, 10_000))
    assert first[-1].ts - first[0].ts > 2 * DAY_S
    assert len({e.user_id for e in first}) > 75  # cohorts kept coming after the first ones


def test_too_few_users_is_refused() -> None:
    with pytest.raises(ValueError, match="at least"):
        generate("churn", hours=1, seed=1, users=1)
