"""The live metrics agree with an offline evaluation of the same predictions.

A day of the seed workload served by a trained model through the engine that ships: every
prediction the prediction log settled is labelled again offline, from the day's events,
by the training labels (``features.labels.connects_within``), and scored with scikit-learn.
The champion's live log loss and Brier score over the day must agree to 1 %."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss, log_loss

from features.batch import BatchHistory
from features.labels import connects_within
from features.table import EventTable, to_ms
from models.model_scorer import ModelScorer
from models.registry import LoadedModel
from service.config import ServiceConfig
from service.engine import Engine
from service.prediction_log import PredictionLog, Settled
from simulation.nodes.boot import DEFAULT_BOOT_SPEC, parse_boot_schedule
from simulation.runner import run
from simulation.workloads import DEFAULT_START, generate
from tests.lifecycle import seed_dataset, trained

HOURS = 24.0


class TappedLog(PredictionLog):
    """A prediction log that also keeps every settled prediction taken from it."""

    taken: list[dict[str, Settled]]

    def take_settled(self) -> dict[str, Settled]:
        settled = super().take_settled()
        self.taken.append(settled)
        return settled


def test_live_log_loss_and_brier_agree_with_an_offline_evaluation() -> None:
    result = trained(hours=6.0, seed=1)
    model = LoadedModel("agreement", "1", result.classifier, seed_dataset(6.0, 1).X[:8])
    config = ServiceConfig()
    engine = Engine(ModelScorer(model), config)
    tapped = TappedLog(
        max_per_tick=config.prediction_log_max_per_tick,
        bucket_s=config.live_metrics_bucket_s,
        windows_s=config.live_metrics_windows_s,
        keep_settled=config.prediction_log_keep_settled,
    )
    tapped.taken = []
    engine.predictions = tapped
    events = list(generate("seed", hours=HOURS, seed=2))
    end = DEFAULT_START + HOURS * 3600.0
    boot = parse_boot_schedule(DEFAULT_BOOT_SPEC).starting_at(DEFAULT_START)
    run(events, engine, start=DEFAULT_START, end=end, boot=boot, seed=2)

    tapped.take_settled()  # those settled after the last tick (by events) too
    settled = [taken["1"] for taken in tapped.taken if "1" in taken]
    probability = np.concatenate([s.probability for s in settled])
    at = np.concatenate([s.at for s in settled])
    rows = np.concatenate([s.rows for s in settled])
    weight = np.concatenate([s.weight for s in settled])
    assert len(probability) > 10_000

    # The outcomes again, offline: the training labels over the model's horizon.
    table = EventTable.from_events(events)
    index = {user: i for i, user in enumerate(table.user_ids)}
    users = np.array([index[engine.users.ids[int(r)]] for r in rows])
    t_ms = np.array([to_ms(float(t)) for t in at], dtype=np.int64)
    labels = connects_within(BatchHistory(table), users, t_ms, to_ms(model.horizon_s))
    assert labels.any() and not labels.all()

    # The day's window at its end: its buckets (``LiveMetrics.window``), the oldest out.
    metrics = tapped.metrics
    newest = metrics.bucket(end)
    inside = np.array(
        [metrics.bucket(float(t)) > newest - HOURS * 3600 / metrics.bucket_s for t in at]
    )
    probability, labels, weight = probability[inside], labels[inside], weight[inside]
    day = engine.live(end)["versions"]["1"]["windows"]["24h"]
    assert day["n"] == len(probability)
    offline_loss = log_loss(labels, probability, sample_weight=weight, labels=[False, True])
    offline_brier = brier_score_loss(labels, probability, sample_weight=weight)
    assert day["log_loss"] == pytest.approx(offline_loss, rel=0.01)
    assert day["brier"] == pytest.approx(offline_brier, rel=0.01)
    print(
        f"live log loss {day['log_loss']:.6f} offline {offline_loss:.6f}; "
        f"live Brier {day['brier']:.6f} offline {offline_brier:.6f}; n {day['n']}"
    )
