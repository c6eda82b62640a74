"""The health monitor of an engine whose champion is a time-to-connect model, registered in a
real MLflow store and served by the registry's scorer: the curve's training reference comes
with its scores, and the features the engine scores are measured against it as a
classifier's are."""

from __future__ import annotations

import dataclasses
from typing import Any

from features.events import UserActivity, UserConnect, UserDisconnect
from models.model_scorer import ModelScorer
from models.model_types import ModelType
from models.registry import CHAMPION, ModelRegistry
from service.config import ServiceConfig
from service.engine import Engine
from simulation.workloads import generate
from tests.lifecycle import register, trained_curve
from training.tracking import TrackingConfig

TICK_S = 10.0
HOURS = 2.0
"""Hours of users an engine sees: over the first, counts of the last hour are still filling."""


def champion(tracking: TrackingConfig, registry: ModelRegistry, **changes: Any) -> ModelScorer:
    """The served scorer over the hazard curve of ``tests.lifecycle`` (``changes`` made to its
    training result), registered and made champion."""
    logged = register(tracking, dataclasses.replace(trained_curve(), **changes))
    registry.set_alias(CHAMPION, logged.version)
    scorer = ModelScorer.from_registry(registry)
    assert scorer.model is not None and scorer.model.model_type is ModelType.CURVE
    return scorer


def served(scorer: ModelScorer, workload: str) -> tuple[Engine, float]:
    """An engine over ``scorer`` that saw :data:`HOURS` of ``workload``'s users, ticking every
    :data:`TICK_S` seconds; and the time of its last tick."""
    engine = Engine(scorer, ServiceConfig(size_on_first_sight=False))
    users = (UserActivity, UserConnect, UserDisconnect)
    events = [e for e in generate(workload, hours=HOURS, seed=5) if isinstance(e, users)]
    at = events[0].ts + TICK_S
    for event in events:
        while event.ts >= at:
            engine.tick(at)
            at += TICK_S
        engine.on_event(event, event.ts)
    engine.tick(at)
    last = engine.last_scores
    assert last.from_model.any() and last.model_version == scorer.model_version
    return engine, at


def test_a_curve_champion_is_measured_against_its_training_reference(
    tracking: TrackingConfig, registry: ModelRegistry
) -> None:
    scorer = champion(tracking, registry)
    version = scorer.model_version

    # The users it was trained on (another seed of the same workload): stable.
    at_home, now = served(scorer, "seed")
    assert at_home.health.version == version
    assert at_home.health.reference == trained_curve().reference
    report = at_home.health.report(now)
    assert report.rows >= 1000 and set(report.psi) == set(trained_curve().model.feature_names)
    assert report.psi_max is not None and report.psi_max < 0.1
    assert not report.degraded and not report.drifted_features

    # Users of other habits: their features drift, and the monitor says so.
    abroad, now = served(scorer, "habits")
    report = abroad.health.report(now)
    assert report.degraded and "feature drift" in report.reasons[0]
    assert report.psi_max is not None and report.psi_max > 0.25
    assert {"since_activity_s", "act_1h"} <= set(report.drifted_features)
    assert abroad.live(now)["health"]["drifted_features"] == report.drifted_features


def test_a_curve_registered_without_a_reference_is_served_and_drift_not_judged(
    tracking: TrackingConfig, registry: ModelRegistry
) -> None:
    scorer = champion(tracking, registry, reference=None)
    assert scorer.model is not None and scorer.model.reference is None
    abroad, now = served(scorer, "habits")
    report = abroad.health.report(now)
    assert report.version == scorer.model_version
    assert not report.degraded and report.psi == {}
    assert "no training reference" in report.notes[0]
