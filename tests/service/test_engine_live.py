"""The engine's prediction log: the scores it sized on are logged by version, a challenger
in shadow is logged beside them and never changes a decision, ``live`` reports both, and the
log survives a restart."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import orjson
import pytest

from features.definitions import FEATURE_NAMES
from features.events import UserActivity, UserConnect
from models.heuristic import HeuristicScorer
from models.model_scorer import ModelScorer
from models.reference import FeatureReference
from models.registry import LoadedModel
from models.scoring import Floats, Scorer, Scores
from service.config import ServiceConfig
from service.engine import Engine
from tests.lifecycle import trained
from tests.service.test_engine import T0, ModelLike, Shell, play, rebuilt_features, trace


@dataclass
class Recording:
    """A model-like scorer that keeps every matrix it was given."""

    inner: ModelLike
    seen: list[Floats] = field(default_factory=list)

    @property
    def horizon_s(self) -> float:
        return self.inner.horizon_s

    def score(self, features: Floats) -> Scores:
        self.seen.append(features)
        return self.inner.score(features)


class Failing:
    horizon_s = 40.0

    def score(self, features: Floats) -> Scores:
        raise RuntimeError("the challenger broke")


def make(scorer: Scorer, shadow: Scorer | None = None, **config: object) -> Engine:
    """Sizing on first sight off unless asked: each tick is one the test makes."""
    config.setdefault("size_on_first_sight", False)
    return Engine(scorer, ServiceConfig(**config), shadow=shadow)  # type: ignore[arg-type]


def _sizing_on_first_sight(
    scorer: Scorer, shadow: Scorer | None = None, **config: object
) -> Engine:
    return Engine(scorer, ServiceConfig(**config), shadow=shadow)  # type: ignore[arg-type]


def without_predictions(engine: Engine) -> dict[str, object]:
    data = engine.to_dict()
    del data["predictions"]
    return data


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_challenger_never_changes_a_decision(seed: int) -> None:
    steps = trace(seed, 300)
    make = _sizing_on_first_sight
    alone = Shell(make(ModelLike(0.3, version="7")))
    beside = Shell(make(ModelLike(0.3, version="7"), shadow=ModelLike(0.9, version="8")))
    broken = Shell(make(ModelLike(0.3, version="7"), shadow=Failing()))
    for shell in (alone, beside, broken):
        play(shell.engine, shell, steps)
    assert beside.log == alone.log == broken.log and len(alone.log) > 3
    assert without_predictions(beside.engine) == without_predictions(alone.engine)
    assert without_predictions(broken.engine) == without_predictions(alone.engine)
    assert broken.engine.shadow_errors > 0 and beside.engine.shadow_errors == 0
    end = steps[-1][1] + 100.0
    live = beside.engine.live(end)
    assert live["champion"] == "7" and live["challenger"] == "8"
    assert "8" not in alone.engine.live(end)["versions"]


def test_live_reports_champion_and_challenger_over_their_horizons() -> None:
    engine = make(ModelLike(0.2, horizon_s=40.0, version="7"), shadow=ModelLike(0.6, 120.0, "8"))
    users = [f"u{i}" for i in range(10)]
    for user in users:
        engine.on_event(UserActivity(T0, user, int(T0)), T0)
    engine.tick(T0 + 1.0)
    engine.on_event(UserConnect(T0 + 60.0, "u3"), T0 + 60.0)  # after 40 s, within 120 s
    engine.tick(T0 + 200.0)
    live = engine.live(T0 + 200.0)
    assert live["champion"] == "7" and live["challenger"] == "8"
    assert live["windows"] == ["1h", "24h"]
    champion, challenger = live["versions"]["7"], live["versions"]["8"]
    assert champion["role"] == "champion" and challenger["role"] == "challenger"
    hour = champion["windows"]["1h"]
    assert hour["n"] == 10 and hour["base_rate"] == 0.0 and hour["mean_prediction"] == 0.2
    hour = challenger["windows"]["1h"]
    assert hour["n"] == 10 and hour["base_rate"] == pytest.approx(0.1)
    assert hour["log_loss"] == pytest.approx(-(np.log(0.6) + 9 * np.log(0.4)) / 10)
    status = engine.status(T0 + 200.0)
    assert status.live == live
    orjson.dumps(live)  # JSON-ready


def test_the_heuristic_is_logged_under_its_own_label() -> None:
    engine = make(HeuristicScorer())
    for k, user in enumerate(["a", "b", "c"]):
        engine.on_event(UserActivity(T0 + k, user, int(T0 + k)), T0 + k)
    engine.tick(T0 + 10.0)
    said = engine.last_scores.probability.copy()  # about the scorer's horizon
    engine.on_event(UserConnect(T0 + 12.0, "b"), T0 + 12.0)
    # An event after the horizon settles the tick's predictions (a tick would too, and hand
    # the champion's to its health monitor).
    later = T0 + 10.0 + engine.scorer.horizon_s + 1.0
    engine.on_event(UserActivity(later, "a", int(later)), later)
    live = engine.live(T0 + 100.0)
    assert live["champion"] == "heuristic" and live["challenger"] is None
    hour = live["versions"]["heuristic"]["windows"]["1h"]
    assert live["versions"]["heuristic"]["role"] == "champion"
    assert hour["n"] == 3 and hour["base_rate"] == pytest.approx(1 / 3)
    settled = engine.predictions.take_settled()["heuristic"]
    assert settled.outcome.tolist() == [False, True, False]
    np.testing.assert_array_equal(settled.probability, said)
    assert engine.predictions.take_settled() == {}


def test_last_features_is_the_matrix_the_scorer_was_given() -> None:
    scorer = Recording(ModelLike(0.1))
    engine = make(scorer)
    for user in ("a", "b"):
        engine.on_event(UserActivity(T0, user, int(T0)), T0)
    engine.tick(T0 + 1.0)
    assert engine.last_features is scorer.seen[-1]
    assert engine.last_features.shape == (len(engine.last_scores), len(FEATURE_NAMES))
    engine.on_event(UserConnect(T0 + 2.0, "a"), T0 + 2.0)
    engine.on_event(UserConnect(T0 + 3.0, "b"), T0 + 3.0)
    engine.tick(T0 + 4.0)  # nobody left to score
    assert engine.last_features.shape == (0, len(FEATURE_NAMES))


def test_the_challenger_scores_the_logs_sample_of_many_users() -> None:
    shadow = Recording(ModelLike(0.5, version="8"))
    engine = make(ModelLike(0.1, version="7"), shadow=shadow, prediction_log_max_per_tick=20)
    for i in range(500):
        engine.on_event(UserActivity(T0, f"u{i}", int(T0)), T0)
    engine.tick(T0 + 1.0)
    assert len(shadow.seen[-1]) == 20 and len(engine.last_features) == 500
    engine.tick(T0 + 100.0)
    hour = engine.live(T0 + 100.0)["versions"]
    assert hour["7"]["windows"]["1h"]["n"] == hour["8"]["windows"]["1h"]["n"] == 20
    assert hour["8"]["windows"]["1h"]["weight"] == pytest.approx(500)


def test_a_challenger_of_the_champions_version_is_not_logged_twice() -> None:
    engine = make(ModelLike(0.1, version="7"), shadow=ModelLike(0.5, version="7"))
    engine.on_event(UserActivity(T0, "a", int(T0)), T0)
    engine.tick(T0 + 1.0)
    engine.tick(T0 + 100.0)
    live = engine.live(T0 + 100.0)
    assert live["versions"]["7"]["windows"]["1h"]["n"] == 1
    assert live["versions"]["7"]["windows"]["1h"]["mean_prediction"] == 0.1


def test_a_challenger_scorer_without_a_model_is_no_challenger() -> None:
    """The live shell hands the engine a ``ModelScorer`` following the ``challenger``
    alias, which holds no model while the alias names no version: no challenger then, and
    the one it held before is one no longer."""
    shadow = ModelScorer()
    engine = make(ModelLike(0.1, version="7"), shadow=shadow)
    engine.on_event(UserActivity(T0, "a", int(T0)), T0)
    engine.tick(T0 + 1.0)
    live = engine.live(T0 + 100.0)
    assert live["challenger"] is None and set(live["versions"]) <= {"7"}
    shadow.swap(LoadedModel("m", "8", trained().classifier, np.zeros((1, len(FEATURE_NAMES)))))
    engine.tick(T0 + 100.0)
    engine.tick(T0 + 200.0)
    live = engine.live(T0 + 200.0)
    assert live["challenger"] == "8" and live["versions"]["8"]["role"] == "challenger"
    shadow.swap(None)  # the alias was removed
    engine.tick(T0 + 300.0)
    live = engine.live(T0 + 300.0)
    assert live["challenger"] is None and live["versions"]["8"]["role"] == "retired"
    assert engine.shadow_errors == 0


def test_a_restart_restores_the_prediction_log() -> None:
    steps = trace(4, 300)
    first, rest = steps[:150], steps[150:]
    champion, challenger = ModelLike(0.3, version="7"), ModelLike(0.6, version="8")
    shell = Shell(make(champion, shadow=challenger))
    play(shell.engine, shell, first)
    data = orjson.loads(orjson.dumps(shell.engine.to_dict()))
    assert data["predictions"]["pending"]
    restored = Engine.from_dict(data, champion, shadow=challenger, features=rebuilt_features(first))
    assert restored.to_dict() == data
    twin = Shell(restored, booting=list(shell.booting), created=shell.created)
    play(shell.engine, shell, rest)
    play(twin.engine, twin, rest)
    end = rest[-1][1] + 100.0
    assert twin.engine.live(end) == shell.engine.live(end)
    assert twin.engine.live(end)["versions"]["8"]["windows"]["1h"]["n"] > 0


def test_a_state_saved_before_the_log_existed_still_loads() -> None:
    engine = make(ModelLike(0.3))
    data = engine.to_dict()
    del data["predictions"]
    restored = Engine.from_dict(data, ModelLike(0.3))
    assert restored.live(T0)["versions"] == {}


def test_a_bad_log_state_is_refused_on_restore() -> None:
    engine = make(ModelLike(0.3))
    engine.on_event(UserActivity(T0, "a", int(T0)), T0)
    engine.tick(T0 + 1.0)
    data = orjson.loads(orjson.dumps(engine.to_dict()))
    data["predictions"]["pending"][0]["probability"] = "not base64!"
    with pytest.raises(ValueError, match="not valid base64"):
        Engine.from_dict(data, ModelLike(0.3))


@dataclass
class Referenced:
    """A model-like scorer whose version carries a training reference."""

    reference: FeatureReference
    version: str = "7"
    horizon_s: float = 40.0

    def score(self, features: Floats) -> Scores:
        n = len(features)
        return Scores(np.full(n, 0.1), np.ones(n, dtype=bool), self.version, 40.0, self.reference)


def scored_rows(engine: Engine, users: int = 30, ticks: int = 60) -> list[Floats]:
    """Users active once, then ``ticks`` ticks 5 s apart; the matrices scored."""
    for k in range(users):
        engine.on_event(UserActivity(T0 + k, f"u{k}", int(T0 + k)), T0 + k)
    seen = []
    for k in range(ticks):
        engine.tick(T0 + users + 5.0 * k)
        seen.append(engine.last_features.copy())
    return seen


def test_the_health_monitor_measures_drift_against_the_champions_reference() -> None:
    seen = scored_rows(make(ModelLike(0.1)))
    matrix = np.concatenate(seen)
    same = FeatureReference.fit(matrix, FEATURE_NAMES)
    elsewhere = FeatureReference.fit(matrix * 3.0 + 1000.0, FEATURE_NAMES)

    at_home = make(Referenced(same))
    scored_rows(at_home)
    report = at_home.live(T0 + 400.0)["health"]
    assert report["version"] == "7" and report["rows"] == len(matrix)
    assert report["psi_max"] is not None and report["psi_max"] < 0.1
    assert not report["drifted_features"]

    abroad = make(Referenced(elsewhere))
    scored_rows(abroad)
    report = abroad.live(T0 + 400.0)["health"]
    assert report["degraded"] and report["drifted_features"]
    assert report["psi_max"] > 0.25

    # A new champion version starts afresh, with its own reference.
    abroad.scorer = Referenced(same, version="8")
    abroad.tick(T0 + 400.0)
    report = abroad.live(T0 + 400.0)["health"]
    assert report["version"] == "8" and report["rows"] == 30 and not report["degraded"]


def test_the_champions_settled_predictions_reach_its_health_monitor() -> None:
    engine = make(
        Referenced(FeatureReference.fit(np.zeros((4, len(FEATURE_NAMES))), FEATURE_NAMES))
    )
    scored_rows(engine, users=30, ticks=60)
    health = engine.live(T0 + 400.0)["health"]
    # Every tick's 30 predictions settle 40 s later, at the first tick after that.
    assert health["settled"] == 30 * (60 - 9)
    assert health["batches"] == health["settled"] // 200
