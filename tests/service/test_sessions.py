from __future__ import annotations

import numpy as np
import pytest

from service.sessions import SessionLengths


def test_nothing_is_counted_on_before_enough_sessions() -> None:
    lengths = SessionLengths(min_sessions=5)
    for _ in range(4):
        lengths.add(100.0)
    assert lengths.end_probability(np.array([50.0]), 100.0).tolist() == [0.0]


def test_end_probability_follows_the_observed_lengths() -> None:
    lengths = SessionLengths(min_sessions=1, half_life_sessions=1e9)
    for length in (60.0, 120.0, 180.0, 240.0):
        lengths.add(length)
    # The four sessions going on (0, 100, 200 and 300 s old) last at least that long:
    # Kaplan-Meier hazards 1/7 at 60 s, 1/5 at 120 s, 1/4 at 180 s, 1/2 at 240 s.
    got = lengths.end_probability(np.array([0.0, 100.0, 200.0, 300.0]), 50.0)
    assert got[0] == 0.0  # none ends before 50 s
    assert got[1] == pytest.approx(1 / 5)  # the 120 s end, among those still at risk
    assert got[2] == pytest.approx(1 / 2)  # the 240 s end; the 300 s one goes on
    assert got[3] == 0.0  # older than any seen to end: nothing known, nothing counted on


def test_sessions_still_going_keep_the_short_ones_seen_first_from_counting_too_much() -> None:
    """Early on, the sessions seen to end are the short ones: the long ones have not ended
    yet. Counted without them, every busy node would be freed soon."""
    lengths = SessionLengths(min_sessions=1, half_life_sessions=1e9)
    for _ in range(20):
        lengths.add(100.0)
    going = np.array([0.0] + [1000.0] * 20)  # one new session, twenty long ones
    assert lengths.end_probability(going, 200.0)[0] == pytest.approx(0.5)
    alone = lengths.end_probability(np.array([0.0]), 200.0)[0]
    assert alone == pytest.approx(1.0)  # with no long one going, all end by 100 s


def test_old_sessions_are_forgotten_and_state_round_trips() -> None:
    lengths = SessionLengths(min_sessions=1, half_life_sessions=10)
    for _ in range(100):
        lengths.add(60.0)
    for _ in range(100):
        lengths.add(600.0)
    recent = lengths.end_probability(np.array([0.0]), 100.0)[0]
    assert recent < 0.05  # the short sessions of long ago barely count any more
    again = SessionLengths(min_sessions=1, half_life_sessions=10)
    again.load(lengths.to_dict())
    assert again.end_probability(np.array([0.0]), 100.0)[0] == recent


def test_bad_lengths_are_ignored() -> None:
    lengths = SessionLengths(min_sessions=1)
    lengths.add(float("nan"))
    lengths.add(-5.0)
    assert lengths.seen == 0


def test_end_probability_at_many_times_is_each_time_s_column() -> None:
    sessions = SessionLengths(min_sessions=5)
    for length in range(60, 600, 7):
        sessions.add(float(length))
    ages, times = np.array([0.0, 100.0, 400.0]), np.array([30.0, 120.0, 240.0])
    table = sessions.end_probability(ages, times)
    assert table.shape == (3, 3)
    for k, t in enumerate(times):
        assert table[:, k] == pytest.approx(sessions.end_probability(ages, float(t)))
    assert sessions.end_probability(np.zeros(0), times).shape == (0, 3)
    assert SessionLengths().end_probability(ages, times).shape == (3, 3)  # nothing seen yet
