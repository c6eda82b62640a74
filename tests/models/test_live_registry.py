"""The training reference and live evidence of versions in a real MLflow store."""

from __future__ import annotations

import dataclasses
import math

import mlflow
import pytest

from models.live_evidence import (
    LIVE_AUC,
    LIVE_DEGRADED,
    LIVE_KEYS,
    LIVE_LOG_LOSS,
    LIVE_N,
    live_key,
    live_metrics,
)
from models.reference import REFERENCE_FILE, FeatureReference
from models.registry import ModelNotFound, ModelRegistry
from tests.lifecycle import BOTH_STORES, register, trained
from training.tracking import TrackingConfig

AT = 1_800_000_000.25


def test_the_reference_is_stored_with_the_version_and_older_versions_load_without(
    registry: ModelRegistry, tracking: TrackingConfig
) -> None:
    result = trained()
    logged = register(tracking)  # version 1, with its reference
    register(tracking, dataclasses.replace(result, reference=None))  # version 2, as before
    loaded = registry.load("1")
    assert loaded.reference is not None and loaded.reference == result.reference
    assert loaded.reference.feature_names == loaded.feature_names
    stored = mlflow.artifacts.load_dict(f"{logged.artifact_uri}/{REFERENCE_FILE}")
    assert FeatureReference.from_dict(stored) == result.reference  # also a run artifact
    old = registry.load("2")
    assert old.reference is None and old.predict_proba(old.input_example).shape == (5,)


def test_live_metrics_round_trip_at_their_latest_step(
    registry: ModelRegistry, tracking: TrackingConfig
) -> None:
    register(tracking)
    assert registry.live_evidence("1") is None
    registry.log_live("1", {"n": 900, "log_loss": 0.07, "auc": math.nan}, at=AT - 60)
    registry.log_live(
        "1", {LIVE_N: 1000, LIVE_LOG_LOSS: 0.08, LIVE_DEGRADED: 1, "brier": 0.02}, at=AT
    )
    evidence = registry.live_evidence("1")
    assert evidence is not None
    assert (evidence.version, evidence.step, evidence.at) == ("1", int(AT), 1_800_000_000.25)
    assert evidence.metrics == {
        LIVE_N: 1000.0,
        LIVE_LOG_LOSS: 0.08,
        LIVE_DEGRADED: 1.0,
        "live_brier": 0.02,
    }
    assert evidence.n == 1000 and evidence.degraded is True and evidence.get("auc") is None
    assert evidence.age_s(AT + 10) == pytest.approx(10.0)
    with pytest.raises(ModelNotFound):
        registry.log_live("7", {"n": 1}, at=AT)


def test_bad_live_metrics_are_refused() -> None:
    assert live_key("ece") == "live_ece" and live_key("live_window_s") in LIVE_KEYS
    assert live_metrics({"n": 3, LIVE_AUC: math.inf}) == {LIVE_N: 3.0}
    for bad, message in [
        ({"n": 1, "accuracy": 0.9}, "no live metric"),
        ({"log_loss": 0.1}, "live_n"),
        ({"n": -1}, "live_n"),
        ({"n": 1, "live_n": 2}, "twice"),
        ({"n": "ten"}, "number"),
    ]:
        with pytest.raises(ValueError, match=message):
            live_metrics(bad)  # type: ignore[arg-type]


@BOTH_STORES
def test_champion_and_challenger_are_compared_at_their_latest_common_step(
    registry: ModelRegistry, tracking: TrackingConfig
) -> None:
    register(tracking)
    register(tracking)
    assert registry.common_live_evidence("1", "2") is None
    for k, at in enumerate((AT, AT + 60, AT + 120)):
        registry.log_live("1", {"n": 100 * (k + 1), "log_loss": 0.1 + k}, at=at)
        if k < 2:  # the challenger was not scored at the last step
            registry.log_live("2", {"n": 50 * (k + 1), "log_loss": 0.2 + k}, at=at)
    pair = registry.common_live_evidence("1", "2")
    assert pair is not None
    champion, challenger = pair
    assert champion.step == challenger.step == int(AT + 60)
    assert (champion.n, champion.get("log_loss")) == (200, 1.1)
    assert (challenger.n, challenger.get("log_loss")) == (100, 1.2)
    registry.log_live("2", {"n": 150, "log_loss": 2.2}, at=AT + 120)
    latest = registry.common_live_evidence("1", "2")
    assert latest is not None and {e.step for e in latest} == {int(AT + 120)}
