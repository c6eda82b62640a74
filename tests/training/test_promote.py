from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest

from models.registry import CHAMPION, PREVIOUS, ModelRegistry
from tests.lifecycle import BOTH_STORES, register, seed_dataset, seed_table, trained, worse
from training.evaluate import ModelMetrics
from training.gates import Tolerances, check_gates
from training.promote import (
    BadHoldout,
    ChampionMoved,
    NoCandidate,
    NothingToRollBack,
    apply,
    build_holdout,
    decide_promotion,
    load_candidate,
    promote,
    rollback,
)
from training.tracking import TrackingConfig

NOW = 1_800_000_000.0


def metrics(log_loss: float, brier: float, auc: float) -> ModelMetrics:
    return ModelMetrics(auc, 0.5, brier, log_loss, 0.01, 100, 10, 0.1)


def test_gates_allow_the_configured_slack_and_no_more() -> None:
    champion = metrics(0.100, 0.0200, 0.950)
    tolerances = Tolerances(log_loss=0.01, brier=0.01, roc_auc=0.005)
    assert all(g.passed for g in check_gates(metrics(0.101, 0.0202, 0.945), champion, tolerances))
    for worse_one in (
        metrics(0.1011, 0.0200, 0.95),
        metrics(0.100, 0.02021, 0.95),
        metrics(0.100, 0.0200, 0.9449),
    ):
        failed = [g.metric for g in check_gates(worse_one, champion, tolerances) if not g.passed]
        assert len(failed) == 1
    nan_auc = check_gates(metrics(0.1, 0.02, math.nan), champion, tolerances)
    assert not nan_auc[2].passed


def test_the_first_model_must_beat_the_heuristic(
    registry: ModelRegistry, tracking: TrackingConfig
) -> None:
    register(tracking)
    candidate = load_candidate(registry)
    decision = promote(registry, candidate, trained().split.test, actor="alice", now=NOW)
    assert decision.promote and decision.applied and decision.reference == "heuristic"
    assert registry.aliases() == {CHAMPION: "1"}
    tags = registry.version_info("1").tags
    assert tags["promotion.decision"] == "promoted"
    assert tags["promotion.by"] == "alice"
    assert tags["promotion.at"] == "2027-01-15T08:00:00Z"
    assert tags["promotion.from"] == "heuristic"
    assert "beat the heuristic" in tags["promotion.why"]
    assert json.loads(tags["promotion.holdout"])["rows"] == len(trained().split.test)
    audit = json.loads(registry.client.get_registered_model(registry.model_name).tags["audit.last"])
    assert audit["action"] == "promote" and audit["version"] == "1" and audit["by"] == "alice"


@pytest.mark.slow
def test_a_worse_model_is_rejected_and_nothing_moves(
    registry: ModelRegistry, tracking: TrackingConfig
) -> None:
    register(tracking)
    promote(registry, load_candidate(registry), trained().split.test, actor="alice")
    register(tracking, worse())
    decision = promote(registry, load_candidate(registry), trained().split.test, actor="bob")
    assert not decision.promote and decision.applied
    assert decision.reference == "version 1" and decision.champion == "1"
    failed = {g.metric for g in decision.gates if not g.passed}
    assert {"log_loss", "brier"} <= failed
    assert registry.aliases() == {CHAMPION: "1"}
    tags = registry.version_info("2").tags
    assert tags["promotion.decision"] == "rejected" and tags["promotion.by"] == "bob"
    assert "FAILED" in tags["promotion.why"]


@pytest.mark.slow
def test_a_dry_run_decides_but_moves_nothing(
    registry: ModelRegistry, tracking: TrackingConfig
) -> None:
    register(tracking)
    decision = promote(
        registry, load_candidate(registry), trained().split.test, actor="alice", dry_run=True
    )
    assert decision.promote and not decision.applied and decision.verdict == "would promote"
    assert registry.aliases() == {}
    assert "promotion.decision" not in registry.version_info("1").tags


@BOTH_STORES
@pytest.mark.slow
def test_promotion_keeps_the_old_champion_and_rollback_returns_to_it(
    registry: ModelRegistry, tracking: TrackingConfig
) -> None:
    test = trained().split.test
    for _ in range(3):  # versions 1, 2, 3 (the same model: no worse, so each is promoted)
        version = register(tracking).version
        decision = promote(registry, load_candidate(registry), test, actor="alice", now=NOW)
        assert decision.promote and decision.champion == (
            None if version == "1" else str(int(version) - 1)
        )
    assert registry.aliases() == {CHAMPION: "3", PREVIOUS: "2"}
    assert registry.version_info("2").tags["demotion.to"] == "3"

    first = rollback(registry, actor="carol", now=NOW, note="bad latency")
    assert (first.from_version, first.to_version, first.previous) == ("3", "2", "1")
    assert registry.aliases() == {CHAMPION: "2", PREVIOUS: "1"}
    tags = registry.version_info("2").tags
    assert tags["rollback.by"] == "carol" and tags["rollback.from"] == "3"
    assert tags["rollback.why"] == "bad latency"
    assert registry.version_info("3").tags["rolled_back.to"] == "2"

    second = rollback(registry, actor="carol")
    assert (second.to_version, second.previous) == ("1", None)
    assert registry.aliases() == {CHAMPION: "1"}
    with pytest.raises(NothingToRollBack):
        rollback(registry, actor="carol")


@pytest.mark.slow
def test_a_decision_made_against_a_champion_that_moved_is_not_applied(
    registry: ModelRegistry, tracking: TrackingConfig
) -> None:
    test = trained().split.test
    register(tracking)
    assert promote(registry, load_candidate(registry), test, actor="alice").promote
    register(tracking)
    stale = decide_promotion(registry, load_candidate(registry, "2"), test)
    assert stale.promote and stale.champion == "1"
    register(tracking)
    assert promote(registry, load_candidate(registry, "3"), test, actor="bob").promote
    with pytest.raises(ChampionMoved, match="version 3 now, not 1"):
        apply(registry, stale, actor="alice")
    assert registry.aliases() == {CHAMPION: "3", PREVIOUS: "1"}
    assert "promotion.decision" not in registry.version_info("2").tags
    again = promote(registry, load_candidate(registry, "2"), test, actor="alice")
    assert again.promote and again.champion == "3"
    assert registry.aliases() == {CHAMPION: "2", PREVIOUS: "3"}


@pytest.mark.slow
def test_the_champion_is_not_promoted_again(
    registry: ModelRegistry, tracking: TrackingConfig
) -> None:
    register(tracking)
    candidate = load_candidate(registry)
    promote(registry, candidate, trained().split.test, actor="alice")
    again = promote(registry, candidate, trained().split.test, actor="alice")
    assert not again.promote and "already the champion" in again.reasons[0]


@pytest.mark.slow
def test_a_champion_that_no_longer_loads_is_replaced_by_the_heuristic_reference(
    registry: ModelRegistry, tracking: TrackingConfig
) -> None:
    register(tracking)
    promote(registry, load_candidate(registry), trained().split.test, actor="alice")
    location = registry.client.get_model_version_download_uri(registry.model_name, "1")
    shutil.rmtree(Path(urlparse(location).path))
    register(tracking)
    decision = promote(registry, load_candidate(registry), trained().split.test, actor="alice")
    assert decision.promote and decision.reference == "heuristic"
    assert "could not be loaded" in decision.reasons[0]
    assert registry.aliases() == {CHAMPION: "2", PREVIOUS: "1"}


def test_the_holdout_is_rebuilt_as_the_candidate_was_trained(
    registry: ModelRegistry, tracking: TrackingConfig
) -> None:
    register(tracking)
    candidate = load_candidate(registry)
    rebuilt = build_holdout(seed_table(), candidate)
    test = trained().split.test
    assert rebuilt.digest() == test.digest()
    np.testing.assert_array_equal(rebuilt.t_ms, test.t_ms)
    assert len(seed_dataset()) > len(rebuilt)


def test_a_holdout_without_connects_is_refused(
    registry: ModelRegistry, tracking: TrackingConfig
) -> None:
    register(tracking)
    test = trained().split.test
    with pytest.raises(BadHoldout):
        promote(registry, load_candidate(registry), test.rows(~test.y), actor="alice")
    assert registry.aliases() == {}


def test_no_version_no_candidate(registry: ModelRegistry) -> None:
    with pytest.raises(NoCandidate):
        load_candidate(registry)
    with pytest.raises(NothingToRollBack):
        rollback(registry, actor="alice")
