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
    # A session 100 s old is one of the three that last 120, 180 or 240 s.
    got = lengths.end_probability(np.array([0.0, 100.0, 200.0, 300.0]), 50.0)
    assert got[0] == 0.0  # none ends before 50 s
    assert got[1] == pytest.approx(1 / 3)  # the 120 s one ends within (100, 150]
    assert got[2] == pytest.approx(1.0)  # only the 240 s one is left, and it ends
    assert got[3] == 0.0  # older than any seen: nothing known, nothing counted on


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
