"""The challenger, promotion on live evidence and the champion's health, in a real store."""

from __future__ import annotations

import json

import pytest

from models.live_evidence import LiveEvidence
from models.registry import CHALLENGER, CHAMPION, PREVIOUS, ModelRegistry
from tests.lifecycle import BOTH_STORES, register, trained
from training.gates import PromotionDecision
from training.live_gates import LiveRule, champion_health, check_live_gates
from training.promote import (
    NoCandidate,
    NoLiveEvidence,
    PromotionError,
    load_candidate,
    load_challenger,
    promote,
    set_challenger,
)
from training.retrain import champion_health as registry_health
from training.tracking import TrackingConfig

AT = 1_800_000_000.0
GOOD = {"n": 1000, "log_loss": 0.070, "brier": 0.0210, "degraded": 0}


def champion_and_challenger(registry: ModelRegistry, tracking: TrackingConfig) -> None:
    """Version 1 the champion, version 2 (the same model) the challenger."""
    register(tracking)
    promote(registry, load_candidate(registry, "1"), trained().split.test, actor="alice")
    register(tracking)
    set_challenger(registry, "2", actor="alice", now=AT)


@BOTH_STORES
def test_the_challenger_is_set_after_a_load_and_never_the_champion(
    registry: ModelRegistry, tracking: TrackingConfig
) -> None:
    with pytest.raises(NoCandidate, match="challenger"):
        load_challenger(registry)
    champion_and_challenger(registry, tracking)
    assert registry.aliases() == {CHAMPION: "1", CHALLENGER: "2"}
    assert load_challenger(registry).version == "2"
    tags = registry.version_info("2").tags
    assert tags["challenger.by"] == "alice" and tags["challenger.at"] == "2027-01-15T08:00:00Z"
    assert (
        json.loads(registry.client.get_registered_model(registry.model_name).tags["audit.last"])[
            "action"
        ]
        == "challenger"
    )
    with pytest.raises(PromotionError, match="is the champion"):
        set_challenger(registry, "1", actor="alice")
    with pytest.raises(NoCandidate):
        set_challenger(registry, "9", actor="alice")


@BOTH_STORES
def test_live_evidence_promotes_the_challenger_and_clears_the_alias(
    registry: ModelRegistry, tracking: TrackingConfig
) -> None:
    champion_and_challenger(registry, tracking)
    registry.log_live("1", GOOD, at=AT)
    registry.log_live("2", GOOD | {"log_loss": 0.065, "brier": 0.0211}, at=AT)
    decision = promote_on_live_evidence(registry, now=AT + 30)
    assert decision.promote and decision.applied, decision.reasons
    assert registry.aliases() == {CHAMPION: "2", PREVIOUS: "1"}  # no challenger any more
    assert decision.live is not None and decision.live["step"] == int(AT)
    assert decision.live["age_s"] == 30.0
    assert {g.metric for g in decision.gates} >= {"log_loss", "live_log_loss", "live_brier"}
    recorded = json.loads(registry.version_info("2").tags["promotion.live"])
    assert recorded["challenger"]["live_log_loss"] == 0.065


@pytest.mark.parametrize(
    ("challenger", "age_s", "failed"),
    [
        (GOOD | {"log_loss": 0.0701}, 30.0, "live_log_loss"),
        (GOOD | {"brier": 0.0213}, 30.0, "live_brier"),
        (GOOD | {"n": 499}, 30.0, "live_n (challenger)"),
        # evidence from a service that stopped scoring both an hour ago says nothing now
        (GOOD | {"log_loss": 0.065}, LiveRule().max_age_s + 1, "live evidence age (s)"),
    ],
    ids=["worse-log-loss", "worse-brier", "too-few", "stale"],
)
def test_live_evidence_rejects_a_worse_unproven_or_stale_challenger(
    registry: ModelRegistry,
    tracking: TrackingConfig,
    challenger: dict[str, float],
    age_s: float,
    failed: str,
) -> None:
    champion_and_challenger(registry, tracking)
    registry.log_live("1", GOOD, at=AT)
    registry.log_live("2", challenger, at=AT)
    decision = promote_on_live_evidence(registry, now=AT + age_s)
    assert not decision.promote and decision.applied
    assert [g.metric for g in decision.gates if not g.passed] == [failed]
    assert registry.aliases() == {CHAMPION: "1", CHALLENGER: "2"}
    assert registry.version_info("2").tags["promotion.decision"] == "rejected"


def test_no_common_live_evidence_is_its_own_error(
    registry: ModelRegistry, tracking: TrackingConfig
) -> None:
    champion_and_challenger(registry, tracking)
    registry.log_live("1", GOOD, at=AT)
    registry.log_live("2", GOOD, at=AT + 1)  # another step
    with pytest.raises(NoLiveEvidence, match="common step"):
        promote(
            registry, load_challenger(registry), trained().split.test, actor="bob", live=LiveRule()
        )
    assert registry.aliases() == {CHAMPION: "1", CHALLENGER: "2"}


def promote_on_live_evidence(registry: ModelRegistry, *, now: float) -> PromotionDecision:
    """``provisioner promote --live`` at ``now``: the challenger on the holdout and live."""
    return promote(
        registry,
        load_challenger(registry),
        trained().split.test,
        actor="bob",
        live=LiveRule(),
        now=now,
    )


def evidence(**metrics: float) -> LiveEvidence:
    return LiveEvidence("1", int(AT), AT, {f"live_{k}": v for k, v in metrics.items()})


def test_the_champion_s_health_needs_fresh_enough_evidence_that_says_healthy() -> None:
    rule = LiveRule(min_settled=500, max_age_s=600.0)
    healthy = champion_health("1", evidence(n=800, degraded=0), AT + 60, rule)
    assert healthy.healthy and "healthy" in healthy.reason
    for verdict, reason in [
        (champion_health(None, None, AT, rule), "no champion"),
        (champion_health("1", None, AT, rule), "no live evidence"),
        (champion_health("1", evidence(n=800, degraded=0), AT + 601, rule), "stale"),
        (champion_health("1", evidence(n=499, degraded=0), AT, rule), "settled"),
        (champion_health("1", evidence(n=800, degraded=1), AT, rule), "degraded"),
        (champion_health("1", evidence(n=800), AT, rule), "live_degraded"),
    ]:
        assert not verdict.healthy and reason in verdict.reason, verdict
    gates = check_live_gates(evidence(n=600, log_loss=0.1), evidence(n=600), rule, now=AT)
    assert [g.passed for g in gates] == [True, True, True, False, False]  # missing ones fail
    stale = check_live_gates(evidence(n=600), evidence(n=600), rule, now=AT + 601)
    assert not stale[0].passed and stale[0].metric == "live evidence age (s)"


def test_the_champion_s_health_is_read_from_the_registry(
    registry: ModelRegistry, tracking: TrackingConfig
) -> None:
    assert registry_health(registry, AT).reason == "no champion"
    champion_and_challenger(registry, tracking)
    assert "no live evidence" in registry_health(registry, AT).reason
    registry.log_live("1", GOOD, at=AT)
    assert registry_health(registry, AT + 10).healthy
    registry.log_live("1", GOOD | {"degraded": 1}, at=AT + 60)
    assert "degraded" in registry_health(registry, AT + 70).reason
