"""The model lifecycle closed in virtual time, against real Redis and a real MLflow store.

A champion trained on a day of the seed serves; four hours in, habits users replace the
seed users (``simulation.drift``). The live evidence the service logs to MLflow and the
retraining job that reads it (``retrain --when-degraded``'s code path) must: keep the
champion while nothing changes, flag the change within an hour and a half, retrain and
promote within four, and bring the champion's live log loss, relative to its base rate's,
back up by the end of the day.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from features.eventlog import EventLog, LogKeys
from models.registry import CHAMPION, ModelRegistry
from provisioner.embedded_redis import EmbeddedRedis
from simulation.drift import DriftScenario, log_loss_skill, run_drift
from tests.lifecycle import sqlite_tracking

pytestmark = pytest.mark.integration

SCENARIO = DriftScenario(hours=24.0, change_at_h=4.0, seed=1)
DETECTED_WITHIN_H = 1.5
PROMOTED_WITHIN_H = 4.0


@pytest.fixture
def event_log(embedded_server: EmbeddedRedis, key_prefix: str) -> Iterator[EventLog]:
    """The event log at ``REDIS_URL`` when set, else in the embedded server."""
    client = redis.Redis.from_url(os.environ.get("REDIS_URL") or embedded_server.url)
    yield EventLog(client, LogKeys(key_prefix))
    for key in client.scan_iter(f"{key_prefix}*"):
        client.delete(key)
    client.close()


def test_drift_is_flagged_retrained_on_and_recovered_from(
    event_log: EventLog, tmp_path: Path
) -> None:
    tracking = sqlite_tracking(tmp_path, "drift")
    registry = ModelRegistry(tracking.tracking_uri, tracking.model_name)
    result = run_drift(SCENARIO, log=event_log, registry=registry, tracking=tracking)
    change = SCENARIO.change_at_h

    # While the population stays, the champion is healthy and the cron job does nothing.
    before = [p for p in result.publications if 1.0 <= p.at_h < change]
    assert before and not any(p.degraded for p in before), [p.reasons for p in before]
    assert all(j.action == "skipped" for j in result.jobs if j.at_h < change)

    # The change is flagged within the hour, by feature drift, and logged to the run.
    summary = result.summary()
    assert summary["hours_to_degraded"] is not None
    assert summary["hours_to_degraded"] <= DETECTED_WITHIN_H, summary
    flagged = next(p for p in result.publications if p.at_h >= change and p.degraded)
    assert any("feature drift" in reason for reason in flagged.reasons)
    assert flagged.logged[result.first_champion]["live_degraded"] == 1.0

    # The job trains on the recent window and promotes through the gates.
    assert summary["hours_to_promotion"] is not None
    assert summary["hours_to_promotion"] <= PROMOTED_WITHIN_H, summary
    champion = registry.alias_version(CHAMPION)
    assert champion is not None and champion != result.first_champion
    tags = registry.version_info(champion).tags
    assert any(key.startswith("promotion") for key in tags), tags
    evidence = registry.live_evidence(champion)
    assert evidence is not None and evidence.n > 0

    # The live log loss, against the base rate's, fell with the change and came back.
    skill = summary["live_log_loss_skill"]
    assert skill["during"] < skill["before"] - 0.2, skill
    assert skill["end"] > skill["during"] + 0.2, skill
    last = result.publications[-1]
    assert last.champion == champion
    assert log_loss_skill(last.logged[champion]) is not None
    print("drift loop:", summary)
