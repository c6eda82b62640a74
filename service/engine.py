"""The engine: events and ticks in, commands out. It holds the pool, the online features,
the scorer, the calibration and the scaler.

Pure: no I/O, no wall clock, no randomness; ``now`` (unix seconds) is handed to every call.
Events must come in log order. Pool times (waits, node and user time) use ``now``; feature
updates use each event's own ``ts``. The simulation passes the event time as ``now``.

- ``on_event(event, now)``: features updated (O(1)); a connect takes an idle ready node or
  waits, and a node is requested at once when more users wait than nodes are coming (within
  the budget); a disconnect frees its node; ``node:status`` drives boot and termination.
- ``tick(now)`` (every ``tick_interval_s``): scores the users who are not connected and were
  seen (any user event) within ``recent_cutoff_s`` (default 1 h: older users get
  probability 0, and their rare connects are covered by the baseline of unforeseen
  connects), converts the scores to the lead time, calibrates them (``service.calibration``),
  spreads them over the plan's moments up to the lead time as the scorer's curve says,
  builds the plan (``service.plan``: per moment the demand distribution of
  ``service.demand``, the frees and the late nodes) and lets the scaler decide
  (``service.scaler``) for the target the service-level feedback puts in force
  (``service.feedback``, fed by every connect's outcome). Vectorised over users.
- The lead time is learned unless configured: one tick plus the ``boot_quantile`` of the
  boots the nodes show, each measured from create request to ready
  (``features.boot_times``); nodes on their way for longer count as that slow, and count as
  supply only by their chance of being ready within the lead time.
- A user's first event (``size_on_first_sight``) sizes at once: at a cold start every user
  is new, and the first nodes are asked for a boot earlier.
- The shell reports back: ``node_created(token, node_id, now)``, ``request_failed(token,
  now)``, ``node_deleted(node_id, now)``.

A need the scaler refuses (``service.scaler``: not finite, or above what the demand
supports) is never acted on: the engine decides on its last sound need instead, counts the
refusal by reason (:attr:`Engine.refusals`) and queues it once per run of refused ticks for
the shell to log (:meth:`Engine.take_refusals`).

The engine owns its ``OnlineFeatures``: one handed in (rebuilt from the event log on a
restart) is indexed as it is, and from then on only the engine feeds it.

A scorer's probability about its own horizon ``H`` becomes one about the lead time ``L``
read off its curve when it gives one (a time-to-connect model), else as
``1 - (1 - p) ** (L / H)`` (a constant hazard); with ``H == L`` it is unchanged.

The engine logs its predictions (``service.prediction_log``): at each tick the scorer's raw
probabilities (about its own horizon) of the users scored, labelled by model version (or
``"heuristic"`` for the fallback's rows), settled against the connects that follow, and
summed into live metrics per version (:meth:`Engine.live`, ``EngineStatus.live``). A
challenger (``shadow``) may run beside the scorer: at each tick it scores the same candidate
users' features (the log's deterministic sample of them, all that is logged) and only its
model rows are logged, under its version. It never enters the calibration, the demand or a
decision, and an exception it raises is counted (:attr:`Engine.shadow_errors`), not raised.
A challenger whose version is the champion's is not logged (it would count twice), and one
that holds no model (no version, no model row: a ``ModelScorer`` following an alias that
names no version) is no challenger.
``last_features`` keeps the last tick's scored feature matrix (rows as ``last_scores``).

The champion's health (``service.model_health``, :attr:`Engine.health`) is watched from the
same log: the model rows of its sample of the candidates are counted against the version's
training reference (``Scores.reference``; feature drift), and the champion's predictions as
they settle feed a change detector on its live loss. A new champion version starts it
afresh. ``live`` reports it under ``health``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from features.boot_times import BootTimes, lead_time_s
from features.definitions import FEATURE_NAMES
from features.events import Event, NodeStatus, NodeStatusChanged, UserConnect, UserDisconnect
from features.online import OnlineFeatures
from features.table import to_ms
from models.scoring import Scorer, Scores, Source, clean_probabilities
from service.calibration import Calibration
from service.commands import Command
from service.config import ServiceConfig
from service.core import PoolCore
from service.feedback import FeedbackReport, ServiceLevelFeedback
from service.model_health import ModelHealth
from service.plan import Moment, moment_count, moments_s, plan, spread
from service.pool import ConnectResult, NodePool, NodeState, PoolCounts
from service.prediction_log import HEURISTIC, PredictionLog, sample
from service.scaler import Decision, Refusal, decide
from service.service_level import MetricsReport
from service.sessions import SessionLengths
from service.user_table import UserTable

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.intp]


@dataclass(frozen=True, slots=True)
class UserScore:
    user_id: str
    probability: float
    """What the scorer said (about its own horizon)."""
    source: Source
    model_version: str | None
    demand_probability: float
    """The calibrated probability of a connect within the lead time the scaler used."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "probability": self.probability,
            "source": self.source.value,
            "model_version": self.model_version,
            "demand_probability": self.demand_probability,
        }


@dataclass(frozen=True, slots=True)
class LastScores:
    """The scores of the last tick, as arrays (one row per scored user)."""

    at: float | None
    rows: Ints
    """Engine user indices into ``ids``."""
    ids: Sequence[str]
    probability: Floats
    from_model: Bools
    model_version: str | None
    timed: Floats
    """``(rows, moments)``: the calibrated probability of a connect within each moment of
    the plan (``service.plan``), the lead time last."""
    moments: Floats
    """The plan's moments (seconds from ``at``) the columns of ``timed`` are about."""

    @classmethod
    def empty(cls, ids: Sequence[str]) -> LastScores:
        """No scores yet (or none since the rows were renumbered)."""
        return cls(
            None,
            np.zeros(0, dtype=np.intp),
            ids,
            np.zeros(0, dtype=np.float64),
            np.zeros(0, dtype=np.bool_),
            None,
            np.zeros((0, 1), dtype=np.float64),
            np.full(1, np.nan),
        )

    @property
    def demand_probability(self) -> Floats:
        """The calibrated probability of a connect within the lead time."""
        lead: Floats = self.timed[:, -1]
        return lead

    def __len__(self) -> int:
        return len(self.rows)

    def row(self, i: int) -> UserScore:
        return UserScore(
            user_id=self.ids[int(self.rows[i])],
            probability=float(self.probability[i]),
            source=Source.MODEL if self.from_model[i] else Source.HEURISTIC,
            model_version=self.model_version if self.from_model[i] else None,
            demand_probability=float(self.demand_probability[i]),
        )

    def top(self, n: int) -> list[UserScore]:
        """The ``n`` users most likely to connect, most likely first."""
        order = np.argsort(-self.demand_probability, kind="stable")[: max(0, n)]
        return [self.row(int(i)) for i in order]

    def get(self, user_id: str) -> UserScore | None:
        """The user's last score (O(scored users)); None when it was not scored."""
        for i, row in enumerate(self.rows.tolist()):
            if self.ids[row] == user_id:
                return self.row(i)
        return None


@dataclass(frozen=True, slots=True)
class EngineStatus:
    """What an API or a dashboard shows."""

    at: float
    counts: PoolCounts
    decided_at: float | None
    """The time of the tick that made the decision below (None before the first): a
    replica that does not tick, or a stalled tick loop, shows an old one."""
    desired_warm: int | None
    need: float | None
    reason: str
    expected_demand: float | None
    baseline_per_s: float
    scored_users: int
    tracked_users: int
    metrics: MetricsReport
    refused_needs: dict[str, int]
    """Needs the scaler refused since the start, by reason."""
    lead_time_s: float
    """The lead time in force (learned from the boots unless configured)."""
    boot_times: dict[str, Any]
    """``BootTimes.summary``: the boots learned."""
    feedback: FeedbackReport
    live: dict[str, Any] = field(default_factory=dict)
    """``Engine.live``: the live metrics per model version."""
    forgotten_users: int = 0
    """Users forgotten since the start (``ServiceConfig.user_retention_s``)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "counts": self.counts.to_dict(),
            "decided_at": self.decided_at,
            "desired_warm": self.desired_warm,
            "need": self.need,
            "reason": self.reason,
            "expected_demand": self.expected_demand,
            "baseline_per_s": self.baseline_per_s,
            "scored_users": self.scored_users,
            "tracked_users": self.tracked_users,
            "forgotten_users": self.forgotten_users,
            "metrics": self.metrics.to_dict(),
            "refused_needs": dict(self.refused_needs),
            "lead_time_s": self.lead_time_s,
            "boot_times": dict(self.boot_times),
            "feedback": self.feedback.to_dict(),
            "live": self.live,
        }


FIRST_SIGHT_GAP_S = 1.0
"""With ``size_on_first_sight``, the engine does not size again on a new user's first event
within this long of its last sizing."""

FORGET_AT_LEAST = 256
"""Stale users (``ServiceConfig.user_retention_s``) are forgotten in batches: once at least
this many, and at least an eighth of the rows, are stale (each batch copies the arrays)."""

_EMPTY_FLOATS: Floats = np.zeros(0, dtype=np.float64)
UNVERSIONED = "model"
"""The label of model rows whose scorer names no version."""


class Engine(PoolCore):
    def __init__(
        self,
        scorer: Scorer,
        config: ServiceConfig | None = None,
        *,
        features: OnlineFeatures | None = None,
        pool: NodePool | None = None,
        shadow: Scorer | None = None,
    ) -> None:
        super().__init__(config, pool)
        self.scorer = scorer
        self.shadow = shadow
        """The challenger: scored and logged at each tick, never used to decide."""
        self.shadow_errors = 0
        """Ticks at which the challenger raised or answered the wrong number of rows."""
        self.predictions = PredictionLog(
            max_per_tick=self.config.prediction_log_max_per_tick,
            bucket_s=self.config.live_metrics_bucket_s,
            windows_s=self.config.live_metrics_windows_s,
            keep_settled=self.config.prediction_log_keep_settled,
        )
        """Scores joined with the connects that follow, and the live metrics per version."""
        self.last_features: Floats = np.zeros((0, len(FEATURE_NAMES)), dtype=np.float64)
        """The feature matrix the last tick scored (rows as ``last_scores``; not a copy)."""
        self.health = ModelHealth()
        """The champion's feature drift and live-loss changes (``service.model_health``): fed
        the log's sample of the rows it scores and its settled predictions."""
        self.features = features if features is not None else OnlineFeatures()
        self.calibration = Calibration(
            half_life_s=self.config.calibration_half_life_s,
            prior=self.config.calibration_prior,
        )
        self.boot_times = BootTimes(prior_s=self.config.boot_prior_s)
        """Create request to ready, per node we asked for (``features.boot_times``)."""
        self.feedback = ServiceLevelFeedback(
            self.config.target_instant_rate, gain=self.config.feedback_gain
        )
        self.lead_time_s = self._lead_time([])
        """The lead time of the last tick (learned from the boots unless configured)."""
        self.sessions = SessionLengths()
        self.last_decision: Decision | None = None
        self.last_tick: float | None = None
        self.refusals: Counter[str] = Counter()
        """Needs the scaler refused, by reason (``service.scaler.RefusalReason``)."""
        self._sound_need: float | None = None
        self._refusing = False
        self._unlogged: list[Refusal] = []
        self.users = UserTable()
        """Seen: any user event."""
        self.forgotten_users = 0
        """Users forgotten since the start: not seen for ``user_retention_s``."""
        self._last_scores = LastScores.empty(self.users.ids)
        self._adopt_feature_users()

    # -- events ----------------------------------------------------------------------------

    def on_event(self, event: Event, now: float) -> list[Command]:
        self.predictions.advance(now)
        if isinstance(event, NodeStatusChanged):
            self._learn_boot(event, now)
            return super().on_event(event, now)
        self.features.update(event)
        users = self.users
        first_sight = event.user_id not in users
        row = users.row(event.user_id)
        users.last_seen[row] = max(users.last_seen[row], event.ts)
        commands = super().on_event(event, now)
        if (
            first_sight
            and self.config.size_on_first_sight
            and (self.last_tick is None or now - self.last_tick >= FIRST_SIGHT_GAP_S)
        ):
            commands += self.tick(now)
        return commands

    def _on_node(self, now: float) -> list[Command]:
        return self._serve_waiting(now)

    def _on_connect(self, event: UserConnect, result: ConnectResult, now: float) -> list[Command]:
        if result is ConnectResult.DUPLICATE:
            return []
        row = self.users.row(event.user_id)
        self.users.connected[row] = True
        self.calibration.connect(row, now)
        self.predictions.connect(row, now)
        at_budget = self.pool.counts().live >= self.config.max_nodes
        self.feedback.connect(result is ConnectResult.INSTANT, at_budget=at_budget)
        if result is ConnectResult.WAITING:
            return self._serve_waiting(now)
        return self._replace(now)

    def _on_disconnect(
        self, event: UserDisconnect, session_s: float | None, now: float
    ) -> list[Command]:
        if session_s is not None:
            self.sessions.add(session_s)
        self.users.connected[self.users.row(event.user_id)] = self.pool.is_connected(event.user_id)
        return []

    # -- ticks -----------------------------------------------------------------------------

    def tick(self, now: float) -> list[Command]:
        self._forget_stale_users(now)
        coming = self._coming_ages(now)
        self.lead_time_s = self._lead_time(coming)
        moments = self._moments()
        rows, probability, from_model, version, timed = self._score(now, moments)
        decision = self._decide(self._plan(timed, moments, now, coming), now)
        commands: list[Command] = []
        for _ in range(decision.request):
            commands.append(self._request(now))
        for node_id in decision.terminate:
            commands.append(self._terminate(node_id, now))
        self.last_decision = decision
        self.last_tick = now
        self._last_scores = LastScores(
            now, rows, self.users.ids, probability, from_model, version, timed, moments
        )
        return commands

    # -- reading ---------------------------------------------------------------------------

    @property
    def last_scores(self) -> LastScores:
        return self._last_scores

    def live(self, now: float) -> dict[str, Any]:
        """The live metrics per version label (``PredictionLog.live``): each version's role
        (``champion``: the scorer's version; ``challenger``: the shadow's; ``fallback``: the
        heuristic behind a model; ``retired``: an earlier version) and its windows; and the
        champion's ``health`` (``ModelHealth.report``)."""
        return self.predictions.live(now) | {"health": self.health.report(now).to_dict()}

    def take_refusals(self) -> list[Refusal]:
        """The first refusal of each run of refused decisions since the last call, for the
        shell to log (each once)."""
        taken, self._unlogged = self._unlogged, []
        return taken

    def status(self, now: float) -> EngineStatus:
        decision = self.last_decision
        return EngineStatus(
            at=now,
            counts=self.pool.counts(),
            decided_at=None if decision is None else self.last_tick,
            desired_warm=None if decision is None else decision.desired_warm,
            need=None if decision is None else decision.need,
            reason="no tick yet" if decision is None else decision.reason,
            expected_demand=None if decision is None else decision.expected_demand,
            baseline_per_s=self.calibration.baseline_rate(),
            scored_users=len(self._last_scores),
            tracked_users=len(self.users),
            metrics=self.metrics(now),
            refused_needs=dict(self.refusals),
            lead_time_s=self.lead_time_s,
            boot_times=self.boot_times.summary(self.config.boot_quantile),
            feedback=self.feedback.report(),
            live=self.live(now),
            forgotten_users=self.forgotten_users,
        )

    # -- state -----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Pool, metrics, calibration and counters; features are rebuilt from the event log."""
        return {
            "config": self.config.to_dict(),
            "pool": self.pool.to_dict(),
            "calibration": self.calibration.to_dict(),
            "sessions": self.sessions.to_dict(),
            "lead_time_s": self.lead_time_s,
            "boot_times": self.boot_times.to_dict(),
            "feedback": self.feedback.to_dict(),
            "next_token": self._next_token,
            "connect_windows": self.connect_windows.to_dict(),
            "last_tick": self.last_tick,
            "refusals": dict(self.refusals),
            "sound_need": self._sound_need,
            "forgotten_users": self.forgotten_users,
            "predictions": self.predictions.to_dict(),
            "health": self.health.to_dict(),
        }

    @classmethod
    def from_dict(
        cls,
        data: dict[str, Any],
        scorer: Scorer,
        *,
        features: OnlineFeatures | None = None,
        config: ServiceConfig | None = None,
        shadow: Scorer | None = None,
    ) -> Engine:
        """Restore an engine; ``features`` (rebuilt from the log) brings the users back."""
        engine = cls(
            scorer,
            config if config is not None else ServiceConfig(**data["config"]),
            features=features,
            pool=NodePool.from_dict(data["pool"]),
            shadow=shadow,
        )
        engine.calibration.load(data["calibration"])
        engine.sessions.load(data.get("sessions", {}))
        engine.boot_times.load(data.get("boot_times", {}))
        engine.feedback.load(data.get("feedback", {}))
        engine.connect_windows.load(data.get("connect_windows"))
        lead = data.get("lead_time_s")
        engine.lead_time_s = engine._lead_time([]) if lead is None else float(lead)
        engine._next_token = int(data["next_token"])
        last_tick = data.get("last_tick")
        engine.last_tick = None if last_tick is None else float(last_tick)
        engine.refusals.update({str(k): int(v) for k, v in data.get("refusals", {}).items()})
        engine.forgotten_users = int(data.get("forgotten_users", 0))
        sound_need = data.get("sound_need")
        engine._sound_need = None if sound_need is None else float(sound_need)
        predictions = data.get("predictions")
        if predictions is not None:
            engine.predictions.load(predictions)
        health = data.get("health")
        if health is not None:
            engine.health = ModelHealth.load(health)
        return engine

    # -- internals -------------------------------------------------------------------------

    def _score(self, now: float, moments: Floats) -> tuple[Ints, Floats, Bools, str | None, Floats]:
        """The candidates' rows, the scorer's probabilities, which came from the model, its
        version, and each row's calibrated probability within each of the plan's
        ``moments``."""
        config = self.config
        users = self.users
        n = len(users)
        candidates = ~users.connected[:n] & (users.last_seen[:n] >= now - config.recent_cutoff_s)
        rows: Ints = np.flatnonzero(candidates)
        if len(rows) == 0:
            self.last_features = np.zeros((0, len(FEATURE_NAMES)), dtype=np.float64)
            self.predictions.advance(now)
            if config.calibrate:
                self.calibration.record(
                    now, rows, _EMPTY_FLOATS, np.zeros(0, bool), n, None, self.lead_time_s
                )
            empty = np.zeros((0, len(moments)), dtype=np.float64)
            return rows, _EMPTY_FLOATS, np.zeros(0, bool), None, empty
        now_ms = to_ms(now)
        if 2 * len(rows) >= n and len(self.features) == n:
            matrix = self.features.features(now_ms)[rows]
        else:
            matrix = self.features.features(now_ms, [users.ids[i] for i in rows.tolist()])
        scores = self.scorer.score(matrix)
        probability = clean_probabilities(scores.probability)
        from_model = np.asarray(scores.from_model, dtype=np.bool_)
        self.last_features = matrix
        kept = sample(rows, now, self.predictions.max_per_tick)
        self._log_scores(now, rows, probability, from_model, scores)
        self._watch_health(now, matrix, kept, from_model, scores)
        if self.shadow is not None:
            self._shadow_score(self.shadow, now, rows, matrix, kept)
        lead = clean_probabilities(scores.within(self.lead_time_s))
        if config.calibrate:
            self.calibration.record(
                now, rows, lead, from_model, n, scores.model_version, self.lead_time_s
            )
            calibrated = self.calibration.calibrated(lead, from_model)
        else:
            calibrated = lead
        return (
            rows,
            probability,
            from_model,
            scores.model_version,
            self._spread(scores, calibrated, moments),
        )

    def _log_scores(
        self, now: float, rows: Ints, probability: Floats, from_model: Bools, scores: Scores
    ) -> None:
        """The scorer's predictions to the log: model rows under the model's version, the
        fallback's under ``heuristic``."""
        log = self.predictions
        label = scores.model_version or UNVERSIONED
        log.champion = label if from_model.any() else HEURISTIC
        if from_model.all():
            log.record(now, rows, probability, label, scores.horizon_s)
            return
        if from_model.any():
            log.record(now, rows[from_model], probability[from_model], label, scores.horizon_s)
        fallback = ~from_model
        log.record(now, rows[fallback], probability[fallback], HEURISTIC, scores.horizon_s)

    def _watch_health(
        self, now: float, matrix: Floats, kept: Ints, from_model: Bools, scores: Scores
    ) -> None:
        """The champion's health: its training reference when its version changes, the
        model rows of the log's sample of the candidates (``kept``: positions), and its
        predictions settled since the last tick."""
        health = self.health
        if from_model.any() and scores.model_version != health.version:
            health.set_reference(scores.model_version, scores.reference)
        sampled = kept[from_model[kept]]
        if len(sampled):
            health.observe_features(matrix[sampled], now)
        settled = self.predictions.take_settled()
        mine = settled.get(health.version) if health.version is not None else None
        if mine is not None and len(mine.probability):
            health.observe_outcomes(mine.probability, mine.outcome, now)

    def _shadow_score(
        self, shadow: Scorer, now: float, rows: Ints, matrix: Floats, kept: Ints
    ) -> None:
        """The challenger scores the log's sample of the candidates (``kept``: positions);
        its model rows are logged under its version, each standing for the users the sample
        stands for."""
        log = self.predictions
        try:
            scores = shadow.score(matrix[kept] if len(kept) < len(rows) else matrix)
        except Exception:  # a challenger must never take the decisions down
            self.shadow_errors += 1
            return
        if len(scores.probability) != len(kept) or len(scores.from_model) != len(kept):
            self.shadow_errors += 1
            return
        from_model = np.asarray(scores.from_model, dtype=np.bool_)
        if scores.model_version is None and not from_model.any():
            log.challenger = None  # no challenger model (a ModelScorer without one)
            return
        label = scores.model_version or UNVERSIONED
        log.challenger = label
        if label == log.champion or not from_model.any():
            return
        log.record(
            now,
            rows[kept][from_model],
            clean_probabilities(scores.probability)[from_model],
            label,
            scores.horizon_s,
            weight=len(rows) / len(kept),
        )

    def _moments(self) -> Floats:
        """The moments the scaler plans for, up to the lead time (``ServiceConfig.plan_moments``,
        ``service.plan.moment_count``)."""
        config = self.config
        count = moment_count(self.lead_time_s, config.tick_interval_s, config.plan_moments)
        return moments_s(self.lead_time_s, count)

    def _spread(self, scores: Scores, calibrated: Floats, moments: Floats) -> Floats:
        """Each scored user's calibrated probability of a connect within each moment, spread
        over the moments as the scorer's curve says (``service.plan.spread``); a scorer
        without curves (the classifier, the heuristic) by a constant hazard."""
        if len(moments) == 1:
            return calibrated[:, None]
        raw = (
            None
            if scores.curves is None
            else np.column_stack([scores.within(float(t)) for t in moments])
        )
        return spread(calibrated, raw, moments / moments[-1])

    def _plan(
        self, timed: Floats, moments: Floats, now: float, coming: list[float]
    ) -> tuple[Moment, ...]:
        """The timed plan (``service.plan``): per moment, the users' calibrated probabilities
        (``timed``: ``(users, moments)``), the baseline of unforeseen connects, the nodes
        disconnects will free (credited, ``free_credit``), and the coming nodes by their
        chance of being ready by then."""
        config = self.config
        frees: Floats | None = None
        if config.free_credit > 0.0:
            ages = np.array(self.pool.busy_session_ages(now), dtype=np.float64)
            frees = config.free_credit * self.sessions.end_probability(ages, moments)
        return plan(
            timed,
            moments=moments,
            baseline_rate=self.calibration.baseline_rate() if config.calibrate else 0.0,
            frees=frees,
            ready=self.boot_times.ready_within(coming, moments),
            in_time=self.boot_times.ready_within([0.0], moments)[0],
            support=config.max_nodes + 1,
            exact=config.exact_users,
        )

    def _replace(self, now: float) -> list[Command]:
        """After a connect took a warm node: size again at once (requests only), on the last
        tick's scores less the users connected since, so the node taken is replaced without
        waiting for the next tick."""
        last = self._last_scores
        if not self.config.replace_at_once or last.at is None:
            return []
        still_out = ~self.users.connected[last.rows]
        planned = self._plan(last.timed[still_out], last.moments, now, self._coming_ages(now))
        decision = self._decide(planned, now)
        return [self._request(now) for _ in range(decision.request)]

    def _decide(self, planned: tuple[Moment, ...], now: float) -> Decision:
        """The scaler's decision on the plan for the target in force, holding the last sound
        need when it refuses one."""
        decision = decide(
            planned,
            self.pool.view(),
            self.config,
            now,
            held_need=self._sound_need,
            target=self.feedback.target_in_force(),
        )
        if decision.refused is None:
            self._sound_need = decision.need
            self._refusing = False
            return decision
        self.refusals[decision.refused.reason.value] += 1
        if not self._refusing:
            self._unlogged.append(decision.refused)
        self._refusing = True
        return decision

    def _learn_boot(self, event: NodeStatusChanged, now: float) -> None:
        """A node we asked for turning ready: its time from the request is a boot."""
        if event.status is not NodeStatus.READY:
            return
        node = self.pool.node(event.node_id)
        if node is None or node.adopted or node.state not in _COMING:
            return
        self.boot_times.add(now - node.created_at)

    def _coming_ages(self, now: float) -> list[float]:
        """How long each node we asked for and not ready yet has been on its way (read once
        per decision: the lead time and the late nodes both come from it)."""
        return [
            now - n.created_at for n in self.pool.nodes() if n.state in _COMING and not n.adopted
        ]

    def _lead_time(self, coming: list[float]) -> float:
        """One tick plus the boot quantile (nodes on their way for longer count as that slow),
        unless the configuration fixes it."""
        config = self.config
        if config.lead_time_s is not None:
            return config.lead_time_s
        boot = self.boot_times.quantile(config.boot_quantile, coming)
        return lead_time_s(boot, config.tick_interval_s)

    def _serve_waiting(self, now: float) -> list[Command]:
        """Request nodes at once for waiting users no coming node will serve (within budget)."""
        counts = self.pool.counts()
        missing = min(counts.waiting - counts.coming, self.config.max_nodes - counts.live)
        return [self._request(now) for _ in range(max(0, missing))]

    def _forget_stale_users(self, now: float) -> None:
        """Forget the users not seen for ``user_retention_s`` and not connected, in batches
        (``FORGET_AT_LEAST``): their rows leave the user table, the online features, the
        calibration's and the prediction log's pending records; the rows kept are
        renumbered in order."""
        users = self.users
        n = len(users)
        stale = ~users.connected[:n] & (users.last_seen[:n] < now - self.config.user_retention_s)
        count = int(np.count_nonzero(stale))
        if count < max(FORGET_AT_LEAST, n // 8):
            return
        keep = ~stale
        # the features hold the engine's users in its rows' order: it adopts theirs at the
        # start, and from then on both add a user at its first event
        self.features.compact(keep)
        new_row = np.cumsum(keep, dtype=np.intp) - 1
        new_row[stale] = -1
        users.compact(keep)
        # the retention is at least the recency cutoff: no pending score is about a user
        # forgotten, and the pending ones follow their users' new rows
        self.calibration.compact(keep)
        self.predictions.remap(new_row)
        self._last_scores = LastScores.empty(users.ids)
        self.forgotten_users += count

    def _adopt_feature_users(self) -> None:
        """Index the users an already fed ``OnlineFeatures`` knows, in its order."""
        ids = list(self.features.user_ids)
        if not ids:
            return
        users = self.users
        for user_id in ids:
            users.row(user_id)
        snap = self.features.snapshot(0)
        last_ms = np.maximum.reduce(
            [snap.last_activity_ms, snap.last_connect_ms, snap.last_disconnect_ms]
        )
        users.last_seen[: len(ids)] = np.where(last_ms >= 0, last_ms / 1000.0, -np.inf)
        for row, user_id in enumerate(ids):
            users.connected[row] = self.pool.is_connected(user_id)


_COMING = (NodeState.REQUESTED, NodeState.BOOTING)
