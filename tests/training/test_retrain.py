from __future__ import annotations

import mlflow
import pytest
import redis

from features.eventlog import EventLog, LogKeys
from features.events import UserConnect, UserDisconnect
from features.table import EventTable
from models.horizon import HorizonSource, choose_horizon, horizon_from_boots
from models.model_types import ModelType
from models.registry import CHALLENGER, CHAMPION, PREVIOUS, ModelRegistry
from simulation.workloads import DEFAULT_START, generate
from tests.lifecycle import (
    BOTH_STORES,
    FAST,
    HOURS,
    fleet_boots,
    merged,
    register,
    retrain_seed,
    trace_source,
    trained,
)
from training.dataset import DatasetSpec
from training.evaluate import evaluate
from training.gates import Tolerances
from training.promote import load_candidate, promote
from training.retrain import retrain, train_and_register
from training.sources import EventSource, from_log
from training.tracking import TrackingConfig
from training.train import BadTrainingData, TrainConfig


def run_retrain(tracking: TrackingConfig, registry: ModelRegistry) -> tuple[str, bool]:
    outcome = retrain_seed(tracking, registry)
    summary = outcome.as_dict()
    assert summary["trained"]["version"] == outcome.trained.logged.version
    return outcome.trained.logged.version, outcome.decision.promote


@BOTH_STORES
@pytest.mark.slow
def test_retrain_registers_and_promotes_then_keeps_the_previous(
    tracking: TrackingConfig, registry: ModelRegistry
) -> None:
    stages: list[str] = []
    outcome = retrain_seed(
        tracking, registry, progress=lambda stage, done, total: stages.append(stage)
    )
    assert outcome.decision.promote and outcome.decision.reference == "heuristic"
    assert {"features", "lightgbm", "baseline", "calibrate", "log", "promote"} <= set(stages)
    # Same data, same seed: the same model, no worse than the champion: promoted too.
    assert run_retrain(tracking, registry) == ("2", True)
    assert registry.aliases() == {CHAMPION: "2", PREVIOUS: "1"}
    assert registry.version_info("2").tags["promotion.note"] == "retrain"


def test_a_dry_run_registers_but_moves_nothing(
    tracking: TrackingConfig, registry: ModelRegistry
) -> None:
    outcome = retrain_seed(tracking, registry, dry_run=True)
    assert outcome.decision.verdict == "would promote"
    assert registry.latest_version() == "1" and registry.aliases() == {}


def no_connects() -> EventSource:
    events = [
        e
        for e in generate("seed", hours=2, seed=1)
        if not isinstance(e, UserConnect | UserDisconnect)
    ]
    return EventSource(EventTable.from_events(events), "trace", "/nonexistent/browse.jsonl")


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (lambda: EventSource(EventTable.from_events([]), "log", "pp:events"), "no training rows"),
        (no_connects, "both classes"),
        (lambda: trace_source(hours=0.25), "slice has"),
    ],
    ids=["empty", "single-class", "tiny"],
)
@pytest.mark.parametrize("model_type", list(ModelType))
def test_bad_data_registers_nothing(
    tracking: TrackingConfig,
    registry: ModelRegistry,
    source: object,
    message: str,
    model_type: ModelType,
) -> None:
    assert callable(source)
    with pytest.raises(BadTrainingData, match=message):
        train_and_register(source(), DatasetSpec(), FAST, tracking, model_type=model_type)
    assert registry.latest_version() is None and registry.aliases() == {}
    experiment = mlflow.MlflowClient(tracking.tracking_uri).get_experiment_by_name(
        tracking.experiment
    )
    if experiment is not None:
        runs = mlflow.MlflowClient(tracking.tracking_uri).search_runs([experiment.experiment_id])
        assert runs == []


@pytest.mark.slow
def test_a_worse_retrained_candidate_is_registered_but_never_promoted(
    tracking: TrackingConfig, registry: ModelRegistry
) -> None:
    register(tracking)  # version 1, trained on the same trace with FAST, is the champion
    promote(registry, load_candidate(registry), trained().split.test, actor="alice")
    # Two stumps instead of a forest: registered (it is a run), rejected by the gates.
    crippled = TrainConfig(max_trees=2, num_leaves=2, early_stopping_rounds=1)
    outcome = retrain(
        trace_source(),
        DatasetSpec(),
        crippled,
        tracking,
        registry,
        tolerances=Tolerances(),
        actor="cron",
    )
    decision = outcome.decision
    assert outcome.trained.logged.version == "2"
    assert not decision.promote and decision.applied and decision.reference == "version 1"
    assert {"log_loss", "brier"} & {g.metric for g in decision.gates if not g.passed}
    # Kept out by the gates, it becomes the challenger (the live service scores it too).
    assert outcome.challenger == "2" and outcome.as_dict()["challenger"] == "2"
    assert registry.aliases() == {CHAMPION: "1", CHALLENGER: "2"}
    assert registry.version_info("2").tags["promotion.decision"] == "rejected"
    assert "kept version 1" in registry.version_info("2").tags["challenger.why"]


def test_a_horizon_chosen_from_logged_boots_is_recorded_and_gated_on_its_own_labels(
    tracking: TrackingConfig,
    registry: ModelRegistry,
    redis_client: redis.Redis,
    key_prefix: str,
) -> None:
    register(tracking)  # version 1: the default 40 s horizon, champion
    promote(registry, load_candidate(registry), trained().split.test, actor="alice")
    # The nodes now boot in 40-59 s, as the node events logged with the users' say.
    nodes = fleet_boots("uniform:40:59", [DEFAULT_START + 60.0 * k for k in range(180)])
    log = EventLog(redis_client, LogKeys(key_prefix))
    log.append_many(merged(generate("seed", hours=HOURS, seed=1), nodes.events))
    source = from_log(log)
    chosen = choose_horizon(None, source.boots)
    assert chosen == horizon_from_boots(nodes.boots) and chosen.source is HorizonSource.BOOTS
    assert chosen.boots == len(nodes.boots) == 90 and 50.0 <= chosen.horizon_s <= 69.0

    outcome = retrain(
        source,
        DatasetSpec(horizon_s=chosen.horizon_s),
        FAST,
        tracking,
        registry,
        tolerances=Tolerances(),
        actor="cron",
        dry_run=True,
        horizon=chosen,
    )
    assert outcome.as_dict()["trained"]["horizon"] == chosen.as_dict()
    params = mlflow.MlflowClient(tracking.tracking_uri).get_run(outcome.trained.logged.run_id)
    assert {k: v for k, v in params.data.params.items() if k.startswith("horizon")} == {
        "horizon_s": str(chosen.horizon_s),
        "horizon_source": "boots",
        "horizon_boots": "90",
        "horizon_boot_quantile": "0.95",
        "horizon_boot_s": str(chosen.boot_s),
    }
    assert params.data.tags["horizon_source"] == "boots"
    tags = registry.version_info("2").tags
    assert (tags["horizon_s"], tags["horizon_source"], tags["horizon_boots"]) == (
        str(chosen.horizon_s),
        "boots",
        "90",
    )

    # As for any horizon that differs from the champion's: both are scored on the labels of
    # the candidate's horizon, over the candidate's own test slice.
    decision, test = outcome.decision, outcome.trained.result.split.test
    assert decision.reference == "version 1" and decision.holdout["horizon_s"] == chosen.horizon_s
    assert decision.holdout["digest"] == test.digest()[:16]
    assert (
        f"champion's horizon is 40.0 s, the candidate's {chosen.horizon_s} s: both scored on "
        "the candidate's labels"
    ) in decision.reasons
    champion = registry.load("1")
    assert decision.reference_metrics == evaluate(test.y, champion.predict_proba(test.X), test.w)
    assert decision.candidate_metrics == outcome.trained.result.metrics["model"]


def test_a_choice_must_be_the_spec_s_horizon(tracking: TrackingConfig) -> None:
    with pytest.raises(ValueError, match="horizon"):
        train_and_register(
            trace_source(),
            DatasetSpec(horizon_s=40.0),
            FAST,
            tracking,
            horizon=choose_horizon(30.0, ()),
        )
