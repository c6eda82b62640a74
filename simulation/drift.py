"""The model lifecycle closed in virtual time: a champion serves while its population changes.

A deployment replayed, with everything real but the clock: the event log in Redis, the
registry in an MLflow store, LightGBM training. The parts and what each does, as in
production:

1. **The initial training job** trains on ``history_hours`` of the ``before`` population's
   events (in the event log) and promotes the first champion through the gates.
2. **The service** (``simulation.runner``: the engine that ships, the simulated fleet)
   starts with its online features rebuilt from that history and serves what follows it
   (:func:`simulation.workloads.change.population_change`): the ``before`` users until
   ``change_at_h``, the ``after`` users from then on. Its champion
   and a challenger in shadow are ``ModelScorer``s following their aliases; every event it
   sees is appended to the event log.
3. **Live evidence**: every ``publish_every_s`` the service logs each version's live
   metrics and the champion's health (``service.live_evidence``) to the version's MLflow
   run, as the live service does.
4. **The retraining cron job**, every ``retrain_every_s``: ``retrain --when-degraded``'s
   code path (``training.retrain.champion_health``, then ``training.retrain.retrain`` on
   the last ``window_hours`` of the log when the champion is not healthy).
5. **The registry check** after each job: the scorers follow the aliases again.

:func:`run_drift` returns every publication (champion, its live figures and health) and
every job (skipped or trained, and the promotion decision), and the figures the issue asks
for: the hours from the change to the first degraded publication and to the first
promotion, and the champion's live log loss (and its skill over the base rate's:
:func:`log_loss_skill`) before the change, from it to the first promotion, and in the run's
last hours.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from features.eventlog import EventLog
from features.events import UserEvent
from features.online import OnlineFeatures
from models.horizon import HorizonChoice, HorizonSource
from models.model_scorer import ModelScorer
from models.registry import CHALLENGER, CHAMPION, ModelRegistry
from service.config import ServiceConfig
from service.engine import Engine
from service.live_evidence import evidence
from simulation.bench.request import DEFAULT_MAX_NODES
from simulation.nodes.boot import DEFAULT_BOOT_SPEC, parse_boot_schedule
from simulation.runner import RunResult, run
from simulation.workloads import DEFAULT_START
from simulation.workloads.change import population_change
from training.dataset import DatasetSpec
from training.gates import Tolerances
from training.live_gates import DEFAULT_LIVE_RULE, LiveRule
from training.retrain import champion_health, retrain
from training.sources import from_log
from training.tracking import TrackingConfig
from training.train import BadTrainingData, TrainConfig

ACTOR: Final = "drift-scenario"
"""Who the scenario's promotions are recorded as."""
END_HOURS: Final = 4.0
"""The summary's ``end``: the live figures of the run's last hours."""


@dataclass(frozen=True)
class DriftScenario:
    before: str = "seed"
    after: str = "habits"
    history_hours: float = 24.0
    """Hours of ``before``'s events the first champion is trained on."""
    hours: float = 36.0
    """Hours served."""
    change_at_h: float = 8.0
    """When (hours into the served window) ``after``'s users replace ``before``'s."""
    seed: int = 1
    users_before: int | None = None
    users_after: int | None = 300
    max_nodes: int = DEFAULT_MAX_NODES
    """The service's node budget (the bench's: the population change must not be a
    budget story)."""
    publish_every_s: float = 900.0
    retrain_every_s: float = 3600.0
    window_hours: float = 12.0
    """The retraining job's window of recent events."""
    evidence_window_s: float = 3600.0
    """The live metrics' window logged as evidence (one of the engine's windows)."""
    horizon_s: float = 40.0
    """The models' label horizon (given: the simulated fleet's boots are not in the log)."""
    boot: str = DEFAULT_BOOT_SPEC

    def __post_init__(self) -> None:
        if not 0 < self.change_at_h < self.hours:
            raise ValueError(
                f"change_at_h must be inside (0, {self.hours}), not {self.change_at_h}"
            )
        if min(self.history_hours, self.publish_every_s, self.retrain_every_s) <= 0:
            raise ValueError("history, publication and retraining intervals must be > 0")
        if self.window_hours <= 0 or self.horizon_s <= 0:
            raise ValueError("the retraining window and the horizon must be > 0")

    @property
    def start(self) -> float:
        return DEFAULT_START

    @property
    def change_at(self) -> float:
        return self.start + self.change_at_h * 3600.0


@dataclass(frozen=True)
class Publication:
    """What the service logged at one publication."""

    at_h: float
    """Hours into the served window."""
    champion: str | None
    challenger: str | None
    logged: dict[str, dict[str, float]]
    """Per version, the live metrics logged to its run."""
    degraded: bool
    reasons: list[str]
    psi_max: float | None


@dataclass(frozen=True)
class JobRun:
    """One run of the retraining cron job."""

    at_h: float
    action: str
    """``skipped`` (the champion is healthy), ``trained``, or ``failed`` (bad training data:
    the job registers nothing, the champion serves on)."""
    health: dict[str, Any]
    trained_version: str | None = None
    promoted: bool = False
    challenger: str | None = None
    reasons: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DriftResult:
    scenario: DriftScenario
    first_champion: str
    publications: list[Publication]
    jobs: list[JobRun]
    run: RunResult

    def hours_to(self, what: Callable[[Any], bool], rows: Iterable[Any]) -> float | None:
        """Hours from the change to the first row (publication or job) for which ``what``."""
        change = self.scenario.change_at_h
        return next((r.at_h - change for r in rows if r.at_h >= change and what(r)), None)

    def summary(self) -> dict[str, Any]:
        change = self.scenario.change_at_h
        promoted = self.hours_to(lambda j: j.promoted, self.jobs)
        recovered_at = None if promoted is None else change + promoted

        def mean(figure: Callable[[dict[str, float]], float | None], lo: float, hi: float) -> Any:
            values = [
                value
                for p in self.publications
                if lo <= p.at_h < hi and p.champion in p.logged
                for value in [figure(p.logged[p.champion])]
                if value is not None
            ]
            return sum(values) / len(values) if values else None

        def periods(figure: Callable[[dict[str, float]], float | None]) -> dict[str, Any]:
            return {
                "before": mean(figure, 0.0, change),
                # From the change to the first promotion.
                "during": mean(figure, change, recovered_at or end),
                # The last hours, when retraining has had time to follow the new users.
                "end": None
                if recovered_at is None
                else mean(figure, max(recovered_at, self.scenario.hours - END_HOURS), end),
            }

        end = self.scenario.hours + 1.0
        return {
            "hours_to_degraded": self.hours_to(lambda p: p.degraded, self.publications),
            "hours_to_promotion": promoted,
            # In the order they served.
            "champions": list(dict.fromkeys(p.champion for p in self.publications if p.champion)),
            "live_log_loss": periods(lambda m: m.get("live_log_loss")),
            "live_log_loss_skill": periods(log_loss_skill),
            "jobs": {
                "runs": len(self.jobs),
                "trained": sum(1 for j in self.jobs if j.action == "trained"),
                "promoted": sum(1 for j in self.jobs if j.promoted),
            },
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": asdict(self.scenario),
            "first_champion": self.first_champion,
            "summary": self.summary(),
            "publications": [asdict(p) for p in self.publications],
            "jobs": [asdict(j) for j in self.jobs],
            "service": self.run.to_dict(),
        }


def run_drift(
    scenario: DriftScenario,
    *,
    log: EventLog,
    registry: ModelRegistry,
    tracking: TrackingConfig,
    train_config: TrainConfig | None = None,
    tolerances: Tolerances | None = None,
    rule: LiveRule = DEFAULT_LIVE_RULE,
    config: ServiceConfig | None = None,
    progress: Callable[[str], None] | None = None,
) -> DriftResult:
    """Run ``scenario`` against the (empty) event log and registry (see the module)."""
    say = progress or (lambda line: None)
    train_config = train_config if train_config is not None else TrainConfig()
    tolerances = tolerances if tolerances is not None else Tolerances()
    spec = DatasetSpec(horizon_s=scenario.horizon_s)
    horizon = HorizonChoice(scenario.horizon_s, HorizonSource.GIVEN)

    def retrain_on_log(window_hours: float, warmup_hours: float) -> Any:
        return retrain(
            from_log(log, window_hours=window_hours, warmup_hours=warmup_hours),
            spec,
            train_config,
            tracking,
            registry,
            tolerances=tolerances,
            actor=ACTOR,
            horizon=horizon,
        )

    history, served = _split_at(_events(scenario), scenario.start)
    log.append_many(history)
    first = retrain_on_log(scenario.history_hours, 0.0)  # the history is all there is
    if not first.decision.promote:
        raise RuntimeError(f"the first champion was not promoted: {first.decision.reasons}")
    first_champion = str(first.trained.logged.version)
    say(f"champion: version {first_champion}, trained on {scenario.history_hours:g} h")

    champion = ModelScorer()
    challenger = ModelScorer()
    champion.reload(registry, CHAMPION)
    features = OnlineFeatures()  # rebuilt from the event log, as the live service starts
    features.update_many(history)
    engine = Engine(
        champion,
        config if config is not None else ServiceConfig(max_nodes=scenario.max_nodes),
        features=features,
        shadow=challenger,
    )
    shell = _Shell(
        scenario,
        engine,
        log,
        registry,
        champion,
        challenger,
        rule,
        say,
        # Training reads as much history before its window as the service's features replay.
        retrain=lambda: retrain_on_log(scenario.window_hours, scenario.history_hours),
    )
    schedule = parse_boot_schedule(scenario.boot).starting_at(scenario.start)
    result = run(
        shell.fed(served),
        engine,
        start=scenario.start,
        end=scenario.start + scenario.hours * 3600.0,
        boot=schedule,
        seed=scenario.seed,
        after_tick=shell.after_tick,
    )
    return DriftResult(scenario, first_champion, shell.publications, shell.jobs, result)


class _Shell:
    """The I/O of the scenario's deployment, run after the engine's ticks."""

    def __init__(
        self,
        scenario: DriftScenario,
        engine: Engine,
        log: EventLog,
        registry: ModelRegistry,
        champion: ModelScorer,
        challenger: ModelScorer,
        rule: LiveRule,
        say: Callable[[str], None],
        *,
        retrain: Callable[[], Any],
    ) -> None:
        self.scenario = scenario
        self.engine = engine
        self.log = log
        self.registry = registry
        self.champion = champion
        self.challenger = challenger
        self.rule = rule
        self.say = say
        self.retrain = retrain
        """The training job the cron job runs when the champion is not healthy."""
        self.publications: list[Publication] = []
        self.jobs: list[JobRun] = []
        self._unlogged: deque[UserEvent] = deque()
        start = scenario.start
        self._next_publish = start + scenario.publish_every_s
        self._next_job = start + scenario.retrain_every_s

    def fed(self, events: Iterator[UserEvent]) -> Iterator[UserEvent]:
        """``events``, each also queued for the event log."""
        for event in events:
            self._unlogged.append(event)
            yield event

    def after_tick(self, now: float) -> None:
        if now >= self._next_publish:
            self._flush(now)
            self._publish(now)
            self._next_publish += self.scenario.publish_every_s
        if now >= self._next_job:
            self._flush(now)
            self._run_job(now)
            self._next_job += self.scenario.retrain_every_s

    def _flush(self, now: float) -> None:
        """Append the events the service has seen (those up to ``now``) to the log."""
        seen: list[UserEvent] = []
        while self._unlogged and self._unlogged[0].ts <= now:
            seen.append(self._unlogged.popleft())
        self.log.append_many(seen)

    def _publish(self, now: float) -> None:
        live = self.engine.live(now)
        logged = evidence(live, self.scenario.evidence_window_s)
        for version, metrics in logged.items():
            self.registry.log_live(version, metrics, at=now)
        health = live["health"]
        publication = Publication(
            at_h=self._hours(now),
            champion=self.champion.model_version,
            challenger=self.challenger.model_version,
            logged=logged,
            degraded=bool(health["degraded"]),
            reasons=list(health["reasons"]),
            psi_max=health["psi_max"],
        )
        self.publications.append(publication)
        loss = logged.get(publication.champion or "", {}).get("live_log_loss", math.nan)
        self.say(
            f"{publication.at_h:6.2f} h  champion {publication.champion}"
            f"  live log loss {loss:.4f}  psi_max {publication.psi_max}"
            f"  {'DEGRADED ' + '; '.join(publication.reasons) if publication.degraded else ''}"
        )

    def _run_job(self, now: float) -> None:
        verdict = champion_health(self.registry, now, self.rule)
        at_h = self._hours(now)
        if verdict.healthy:
            self.jobs.append(JobRun(at_h, "skipped", verdict.as_dict()))
            return
        try:
            outcome = self.retrain()
        except BadTrainingData as e:  # the cron job exits 1 and registers nothing
            self.jobs.append(JobRun(at_h, "failed", verdict.as_dict(), reasons=[str(e)]))
            self.say(f"{at_h:6.2f} h  retrain ({verdict.reason}) failed: {e}")
            return
        decision = outcome.decision
        job = JobRun(
            at_h,
            "trained",
            verdict.as_dict(),
            trained_version=str(outcome.trained.logged.version),
            promoted=bool(decision.promote),
            challenger=outcome.challenger,
            reasons=list(decision.reasons),
        )
        self.jobs.append(job)
        self.say(
            f"{at_h:6.2f} h  retrain ({verdict.reason}): version {job.trained_version} "
            f"{'promoted' if job.promoted else 'kept as challenger'}"
        )
        self.champion.reload(self.registry, CHAMPION)
        if not self.challenger.reload(self.registry, CHALLENGER):
            self.challenger.swap(None)

    def _hours(self, now: float) -> float:
        return round((now - self.scenario.start) / 3600.0, 4)


def _events(scenario: DriftScenario) -> Iterator[UserEvent]:
    """The history and the served window as one population change: the served window
    continues the history's users."""
    return population_change(
        scenario.before,
        scenario.after,
        hours=scenario.history_hours + scenario.hours,
        change_at_h=scenario.history_hours + scenario.change_at_h,
        seed=scenario.seed,
        start=scenario.start - scenario.history_hours * 3600.0,
        users_before=scenario.users_before,
        users_after=scenario.users_after,
    )


def _split_at(
    events: Iterator[UserEvent], at: float
) -> tuple[list[UserEvent], Iterator[UserEvent]]:
    """The events before ``at``, and an iterator over the rest."""
    before: list[UserEvent] = []
    for event in events:
        if event.ts >= at:
            return before, itertools.chain([event], events)
        before.append(event)
    return before, iter(())


def log_loss_skill(metrics: dict[str, float]) -> float | None:
    """``1 - log loss / log loss of the base rate``: the share of the uncertainty the model
    removes over always answering the window's base rate (0: no better; 1: perfect). The log
    loss itself rises and falls with the base rate (fewer connects, lower loss); this does
    not, so it shows a model that stopped fitting its traffic."""
    loss, rate = metrics.get("live_log_loss"), metrics.get("live_base_rate")
    if loss is None or rate is None or not 0.0 < rate < 1.0:
        return None
    entropy = -(rate * math.log(rate) + (1.0 - rate) * math.log(1.0 - rate))
    return 1.0 - loss / entropy
