"""Users not seen for the retention are forgotten: the engine's rows, the online features and
the pending predictions follow, the users kept keep their state, and one who returns starts
afresh."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from features.events import UserActivity, UserConnect, UserDisconnect, UserEvent
from features.online import OnlineFeatures
from features.table import to_ms
from models.heuristic import HeuristicScorer
from service.config import ServiceConfig
from service.engine import FORGET_AT_LEAST, Engine
from tests.service.test_engine import Shell

T0 = 1_732_492_800.0
DAY = 86_400.0
RETENTION = 2 * DAY


def old_users(n: int) -> list[UserEvent]:
    events: list[UserEvent] = []
    for i in range(n):
        t = T0 + i
        events += [UserActivity(t, f"old-{i}"), UserConnect(t + 5, f"old-{i}")]
        events.append(UserDisconnect(T0 + 1000, f"old-{i}"))  # all last seen at once
    return events


def new_users(n: int, at: float) -> list[UserEvent]:
    events: list[UserEvent] = []
    for i in range(n):
        events += [UserActivity(at + i, f"new-{i}"), UserActivity(at + i + 30, f"new-{i}")]
    return events


def engine_fed(events: list[UserEvent]) -> tuple[Engine, Shell]:
    engine = Engine(HeuristicScorer(), ServiceConfig(user_retention_s=RETENTION, max_nodes=500))
    shell = Shell(engine)
    for event in sorted(events, key=lambda e: e.ts):
        shell.event(event)
    return engine, shell


def test_stale_users_are_forgotten_and_the_rest_keep_their_state() -> None:
    n_old = 2 * FORGET_AT_LEAST
    later = T0 + RETENTION + 3600
    # one old user stays connected for days: never forgotten while connected
    old = [*old_users(n_old), UserConnect(T0 + 7, "stayer")]
    engine, shell = engine_fed(old)
    assert len(engine.users) == n_old + 1
    assert engine.forgotten_users == 0
    new = new_users(50, later)
    for event in new:  # the first new user's first sight sizes: a tick, which forgets
        shell.event(event)
    shell.tick(later + 100)
    assert engine.forgotten_users == n_old
    assert engine.status(later + 100).forgotten_users == n_old
    kept = ["stayer", *(f"new-{i}" for i in range(50))]
    assert sorted(engine.users.ids) == sorted(kept)
    assert list(engine.features.user_ids) == engine.users.ids
    assert engine.users.connected[engine.users.ids.index("stayer")]
    # the kept users' features are those of features fed with their events only
    fresh = OnlineFeatures()
    fresh.update_many(e for e in sorted([*old, *new], key=lambda e: e.ts) if e.user_id in kept)
    now_ms = to_ms(later + 100)
    np.testing.assert_array_equal(
        engine.features.features(now_ms, engine.users.ids),
        fresh.features(now_ms, engine.users.ids),
    )
    # the state round trip holds after forgetting
    data = orjson.loads(orjson.dumps(engine.to_dict(), option=orjson.OPT_SERIALIZE_NUMPY))
    restored = Engine.from_dict(data, HeuristicScorer(), features=engine.features)
    assert restored.forgotten_users == n_old


def test_a_forgotten_user_who_returns_starts_from_an_empty_history() -> None:
    later = T0 + RETENTION + 3600
    engine, shell = engine_fed([*old_users(2 * FORGET_AT_LEAST), *new_users(10, later)])
    shell.tick(later + 100)
    assert "old-3" not in engine.users
    back = UserActivity(later + 200, "old-3")
    shell.event(back)
    alone = OnlineFeatures()
    alone.update(back)
    now_ms = to_ms(later + 210)
    np.testing.assert_array_equal(
        engine.features.features(now_ms, ["old-3"]), alone.features(now_ms, ["old-3"])
    )
    shell.tick(later + 210)
    assert engine.last_scores.get("old-3") is not None


def test_forgetting_changes_no_decision_and_no_live_evidence() -> None:
    """The same events with and without forgetting: the same commands, and the prediction
    log settles the same outcomes (pending rows renumbered with their users; what was due
    settled before its users left)."""
    n_old = 2 * FORGET_AT_LEAST
    old = sorted(old_users(n_old), key=lambda e: e.ts)
    stale_at = old[-1].ts + RETENTION  # the old users are stale from here
    # new users arrive and are scored while the old ones become stale; two connect after
    new = new_users(40, stale_at - 30)
    new += [UserConnect(stale_at + 10, "new-5"), UserConnect(stale_at + 12, "new-31")]
    new.sort(key=lambda e: e.ts)
    runs = []
    for retention in (RETENTION, 30 * DAY):
        # the lead time set: this shell's boots never end, a learned one would grow forever
        config = ServiceConfig(user_retention_s=retention, lead_time_s=40.0)
        engine = Engine(HeuristicScorer(), config)
        shell = Shell(engine)
        for event in old:
            shell.event(event)
        shell.tick(old[-1].ts + 5)  # every old user out and recent: all scored
        assert len(engine.predictions) == n_old
        shell.tick(stale_at - 40)  # a tick alone settles nothing: the old scores stay due
        coming = list(new)
        for at in np.arange(stale_at - 30, stale_at + 120, 5.0):
            while coming and coming[0].ts <= at:
                shell.event(coming.pop(0))
            shell.tick(float(at))
        runs.append((engine, shell))
    (forgetting, shell_f), (keeping, shell_k) = runs
    assert forgetting.forgotten_users == n_old and keeping.forgotten_users == 0
    assert shell_f.log == shell_k.log
    assert forgetting.predictions.metrics.to_dict() == keeping.predictions.metrics.to_dict()
    assert forgetting.health.to_dict() == keeping.health.to_dict()
    assert forgetting.calibration.hits.sum() > 0
    np.testing.assert_equal(forgetting.calibration.rates(), keeping.calibration.rates())
    assert forgetting.calibration.baseline_rate() == keeping.calibration.baseline_rate()


def test_a_few_stale_users_wait_for_a_batch() -> None:
    later = T0 + RETENTION + 3600
    engine, shell = engine_fed([*old_users(FORGET_AT_LEAST - 1), *new_users(10, later)])
    shell.tick(later + 100)
    assert engine.forgotten_users == 0
    assert len(engine.users) == FORGET_AT_LEAST - 1 + 10


def test_retention_shorter_than_the_recency_cutoff_is_refused() -> None:
    with pytest.raises(ValueError, match="user_retention_s"):
        ServiceConfig(user_retention_s=60.0, recent_cutoff_s=3600.0)
