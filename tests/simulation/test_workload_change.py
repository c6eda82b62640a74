"""The population change: before's users stop at the change, their open sessions end, and
after's users take over."""

from __future__ import annotations

import pytest

from features.events import UserConnect, UserDisconnect
from simulation.workloads import DEFAULT_START, generate
from simulation.workloads.change import population_change

HOURS = 12.0
CHANGE_H = 6.0
CHANGE_AT = DEFAULT_START + CHANGE_H * 3600.0


def test_before_stops_at_the_change_and_after_takes_over() -> None:
    events = list(population_change("seed", "habits", hours=HOURS, change_at_h=CHANGE_H, seed=3))
    assert [e.ts for e in events] == sorted(e.ts for e in events)
    before = {e.user_id for e in generate("seed", hours=HOURS, seed=3)}
    after = {e.user_id for e in generate("habits", hours=HOURS - CHANGE_H, seed=4, start=CHANGE_AT)}
    assert before and after and not before & after
    late = [e for e in events if e.user_id in before and e.ts >= CHANGE_AT]
    assert late and all(isinstance(e, UserDisconnect) for e in late)
    assert all(e.ts >= CHANGE_AT for e in events if e.user_id in after)
    assert any(e.ts < CHANGE_AT for e in events if e.user_id in before)

    # Every session of before's users open at the change is closed afterwards, once.
    open_at_change: set[str] = set()
    for event in events:
        if event.ts >= CHANGE_AT or event.user_id not in before:
            continue
        if isinstance(event, UserConnect):
            open_at_change.add(event.user_id)
        elif isinstance(event, UserDisconnect):
            open_at_change.discard(event.user_id)
    assert open_at_change, "the seed workload has sessions running at the change"
    assert sorted(e.user_id for e in late) == sorted(open_at_change)


@pytest.mark.parametrize("change_at_h", [0.0, HOURS, -1.0])
def test_a_change_outside_the_window_is_refused(change_at_h: float) -> None:
    with pytest.raises(ValueError, match="change_at_h"):
        population_change("seed", "habits", hours=HOURS, change_at_h=change_at_h, seed=1)
