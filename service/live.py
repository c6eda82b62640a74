"""The live shell: feeds the decision core from Redis and carries out its commands.

One asyncio loop owns the engine (nothing else touches it); blocking Redis calls run in
worker threads. Tasks:

- **consume**: read the event log through the consumer group, apply new entries (those
  above the watermark), save the state with the new watermark, then acknowledge. When
  Redis cannot be reached the service is not ready at once, and it retries with capped,
  jittered exponential backoff; the consumer reads its own pending entries first again;
- **tick**: every ``tick_interval_s`` of the clock, let the engine decide; skipped while
  the service cannot see events (no scale-down while blind) and while it is not the
  leader;
- **commands**: each create/terminate runs as its own task against the node provider,
  and its outcome goes back to the engine (``service.node_commands``);
- **reconcile**: every ``reconcile_every_s``, converge with the provider's node list
  (``service.reconcile``);
- **model**: when a model watcher is given, let it check the registry now and then; a
  second watcher may follow the ``challenger`` alias (its scorer is the engine's shadow);
  it never holds readiness back, and no challenger is a normal state;
- **release-memory**: every ``release_memory_every_s`` of wall time, give the memory the
  process freed back to the system (``service.allocator``: glibc only);
- **evidence**: when an evidence sink (the model registry) is given, the leader logs the
  champion's and the challenger's live metrics over the shortest live window to their runs
  every ``live_log_every_s`` of the clock (``service.evidence_log``: in a worker thread,
  failures counted, never fatal).

**Readiness** (``/readyz``, :meth:`LiveService.readiness`): the service sees events (the
last read of the event log succeeded, recently enough, and the consumer runs) and the first
check of the model registry has settled what scores the users (the champion loaded, or why
the heuristic serves: no registry configured, no champion, the registry unreachable, a load
that failed). Ticks wait only for the first (:attr:`LiveService.sees_events`).

At start the state saved in Redis is restored and the online features are rebuilt by
replaying the recent event log up to the watermark (``service.restore``). Entries a dead
predecessor left pending are taken over and applied (those at or below the watermark are
skipped), and node requests that were in flight when it died are counted failed at once. A
service that finds no state starts its pool empty and applies only what is appended from
then on.

**Leadership seam.** ``leader`` (default: always) says whether this process may act on
the pool: ticks, node commands and reconciliation happen only while it returns True (a
lease, e.g. ``service.lease``, plugs in here). Events are consumed regardless, so a
replica with a consumer group of its own keeps its view current while it follows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Final, Protocol

import numpy as np
import redis

from features.clock import Clock
from features.definitions import FEATURE_NAMES
from features.eventlog import EventLog
from features.table import to_ms
from models.scoring import Scores, Source
from service.allocator import can_release_free_memory, release_free_memory
from service.breaker import CircuitBreaker
from service.commands import Command, TerminateNode
from service.connect_windows import ServiceLevel
from service.consumer import StreamConsumer
from service.defaults import (
    DEFAULT_LIVE_LOG_S,
    DEFAULT_MODEL_CHECK_S,
    DEFAULT_RELEASE_MEMORY_S,
    DEFAULT_WARM_HISTORY_S,
)
from service.engine import Engine, EngineStatus
from service.evidence_log import EvidenceLog, EvidenceSink
from service.node_commands import NodeCommands
from service.pool_history import PoolHistory
from service.provider import NodeProvider, ProviderError
from service.reconcile import reconcile
from service.restore import EngineFactory, restore
from service.state_store import StateStore
from service.telemetry import Telemetry

log = logging.getLogger(__name__)


class ModelWatcher(Protocol):
    """Keeps the scorer's model in step with the registry (see models.model_scorer)."""

    async def check(self) -> None:
        """Load a new champion in the background and swap it in; never raises."""
        ...

    @property
    def outcome(self) -> str | None:
        """What the last check came to, in a sentence; None until the first one finished."""
        ...

    def info(self) -> dict[str, Any]: ...

    def fallbacks(self) -> dict[str, int]: ...


NO_REGISTRY = "serving the heuristic; no model registry configured"
FIRST_CHECK_PENDING = "the first check of the model registry has not finished"


@dataclass(frozen=True, slots=True)
class Readiness:
    """What ``/readyz`` says: ready when the service sees events and the first check of the
    model registry has settled what scores the users."""

    sees_events: bool
    model_settled: bool
    model: str
    """What scores the users (:data:`FIRST_CHECK_PENDING` until the first check settled it)."""
    watermark: str | None
    """The ID of the last event log entry applied."""
    reasons: tuple[str, ...]
    """Why it is not ready (none when it is)."""

    @property
    def ready(self) -> bool:
        return self.sees_events and self.model_settled

    def to_dict(self) -> dict[str, Any]:
        return {
            "ready": self.ready,
            "sees_events": self.sees_events,
            "model_settled": self.model_settled,
            "model": self.model,
            "watermark": self.watermark,
            "reasons": list(self.reasons),
        }


RECONCILE_UNAVAILABLE: Final = (
    "the node provider cannot list its nodes (the original node API has no GET /api/nodes), "
    "so nothing corrects a lost status event, a create whose answer was lost, or a lost "
    "delete: the pool and the provider may drift apart"
)
"""Said once in the log, and in ``/v1/pool``'s ``provider``, when a listing answers None."""


@dataclass(frozen=True, slots=True)
class LiveOptions:
    warm_history_s: float = DEFAULT_WARM_HISTORY_S
    """How much of the event log rebuilds the features at start."""
    read_block_ms: int = 500
    stale_after_s: float = 5.0
    """Not ready when no read of the event log succeeded for this long (wall seconds)."""
    reconcile_every_s: float = 30.0
    model_check_every_s: float = DEFAULT_MODEL_CHECK_S
    live_log_every_s: float = DEFAULT_LIVE_LOG_S
    """How often (clock seconds) the live evidence is logged to the registry."""
    max_backoff_s: float = 2.0
    """Longest wait (wall seconds) between two attempts to reach an unreachable event log."""
    release_memory_every_s: float = DEFAULT_RELEASE_MEMORY_S
    """How often (wall seconds) freed memory goes back to the system (``service.allocator``;
    0: never)."""


class LiveService:
    def __init__(
        self,
        *,
        engine_factory: EngineFactory,
        event_log: EventLog,
        consumer: StreamConsumer,
        store: StateStore,
        provider: NodeProvider,
        clock: Clock,
        telemetry: Telemetry | None = None,
        options: LiveOptions | None = None,
        watcher: ModelWatcher | None = None,
        challenger: ModelWatcher | None = None,
        evidence: EvidenceSink | None = None,
        leader: Callable[[], bool] | None = None,
    ) -> None:
        self.event_log = event_log
        self.consumer = consumer
        self.store = store
        self.provider = provider
        self.clock = clock
        self.telemetry = telemetry if telemetry is not None else Telemetry()
        self.options = options if options is not None else LiveOptions()
        self.watcher = watcher
        self.challenger = challenger
        """Follows the registry's ``challenger`` alias (its scorer: the engine's shadow)."""
        self.evidence = None if evidence is None else EvidenceLog(evidence, self.telemetry)
        """Logs the live evidence to the registry (None: no registry)."""
        self.leader = leader
        """Whether this process may act on the pool now (None: always)."""
        self.reconcile_unavailable: str | None = None
        """Why reconcile cannot run with this provider (None: it can, or was not tried)."""
        breaker = getattr(provider, "breaker", None)
        self.breaker = breaker if isinstance(breaker, CircuitBreaker) else None
        """The provider's circuit breaker, when it has one (reported, never driven here)."""
        self._engine_factory = engine_factory
        self._engine: Engine | None = None
        self.watermark: str | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.commands = NodeCommands(
            provider=provider,
            engine=lambda: self.engine,
            clock=clock,
            telemetry=self.telemetry,
            save=self._save_quietly,
        )
        self._last_read: float | None = None
        self._log_reachable = False
        """False from a failed read of the event log until the next one succeeds."""
        self._rng = random.Random()
        self._save_lock = asyncio.Lock()
        self.started_at: float | None = None
        self.history = PoolHistory()
        """The pool after each tick, for the dashboard (``GET /v1/history``)."""

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("the service has not started")
        return self._engine

    async def start(self) -> None:
        restored = await restore(
            store=self.store,
            event_log=self.event_log,
            consumer=self.consumer,
            engine_factory=self._engine_factory,
            now=self.clock.now(),
            history_s=self.options.warm_history_s,
        )
        self._engine, self.watermark = restored.engine, restored.watermark
        if restored.expired:
            self.telemetry.reconciled.labels(action="expire").inc(len(restored.expired))
        await self._save()
        log.info(
            "service started: %s state, %d events replayed into the features, watermark %s, "
            "%d pending entries taken over, %d orphaned node requests failed",
            "fresh" if restored.fresh else "restored",
            restored.replayed,
            self.watermark,
            restored.taken,
            len(restored.expired),
        )
        self.started_at = self.clock.now()
        self._spawn(self._consume_loop(), "consume")
        self._spawn(self._tick_loop(), "tick")
        self._spawn(self._reconcile_loop(), "reconcile")
        if self.watcher is not None or self.challenger is not None:
            self._spawn(self._model_loop(), "model")
        if self.evidence is not None:
            self._spawn(self._evidence_loop(), "evidence")
        if self.options.release_memory_every_s > 0:
            if can_release_free_memory():
                self._spawn(self._release_memory_loop(), "release-memory")
            else:
                log.info("freed memory stays with the C allocator: it is not glibc")

    async def stop(self) -> None:
        tasks = [*self._tasks, *self.commands.running()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._engine is not None:
            with contextlib.suppress(redis.RedisError):
                await self._save()

    # -- what the API reads ----------------------------------------------------------------

    @property
    def sees_events(self) -> bool:
        """The last read of the event log succeeded, recently enough, and the consumer runs."""
        return self._blind_because() is None

    def readiness(self) -> Readiness:
        """Whether the service is ready (``/readyz``), and why not."""
        blind = self._blind_because()
        watcher = self.watcher
        if watcher is None:
            settled, model = True, NO_REGISTRY
        else:
            outcome = watcher.outcome
            settled, model = outcome is not None, outcome or FIRST_CHECK_PENDING
        reasons = [blind] if blind is not None else []
        if not settled:
            reasons.append(FIRST_CHECK_PENDING)
        return Readiness(
            sees_events=blind is None,
            model_settled=settled,
            model=model,
            watermark=self.watermark,
            reasons=tuple(reasons),
        )

    def service_level(self) -> ServiceLevel:
        """The instant rate per window until now, against the configured target."""
        engine = self.engine
        return engine.connect_windows.service_level(
            self.clock.now(), engine.config.target_instant_rate
        )

    def is_leader(self) -> bool:
        return self.leader is None or self.leader()

    def provider_status(self) -> dict[str, Any]:
        """The node provider's health as the service sees it (its circuit breaker)."""
        breaker = None if self.breaker is None else self.breaker.to_dict(time.monotonic())
        return {
            "breaker": breaker,
            "deletes_in_flight": self.commands.deletes_in_flight(),
            "reconcile_unavailable": self.reconcile_unavailable,
        }

    def refresh_telemetry(self, status: EngineStatus | None = None) -> None:
        """Gauges read from other objects (the pool and the engine's status, the connect
        windows, the live metrics, the scorer's fallbacks, the model served, the breaker):
        now, so that ``/metrics`` and ``/v1/pool`` read the same state at the time of the
        request, not the last tick's. ``status``: the engine's, when the caller has it now."""
        self.telemetry.ready.set(1 if self.sees_events else 0)
        engine = self._engine
        if engine is not None:
            if status is None:
                status = engine.status(self.clock.now())
            self.telemetry.observe_status(status, engine.pool.metrics)
            self.telemetry.observe_service_level(self.service_level())
            self.telemetry.observe_live(status.live)
        if self.watcher is not None:
            self.telemetry.observe_fallbacks(self.watcher.fallbacks())
            self.telemetry.observe_model(self.watcher.info()["source"] == Source.MODEL.value)
        if self.breaker is not None:
            self.telemetry.observe_breaker(self.breaker)

    def score(self, user_ids: list[str]) -> tuple[Scores, np.ndarray]:
        """Scores and feature rows of ``user_ids`` now (unknown users: empty history)."""
        engine = self.engine
        matrix = engine.features.features(to_ms(self.clock.now()), user_ids)
        return engine.scorer.score(matrix), matrix

    def user(self, user_id: str) -> dict[str, Any]:
        scores, matrix = self.score([user_id])
        engine = self.engine
        last = engine.last_scores.get(user_id)
        return {
            "user_id": user_id,
            "known": user_id in engine.features,
            "connected": engine.pool.is_connected(user_id),
            "node_id": engine.pool.node_of(user_id),
            "features": dict(zip(FEATURE_NAMES, matrix[0].tolist(), strict=True)),
            "probability": float(scores.probability[0]),
            "source": scores.source(0).value,
            "model_version": scores.model_version if scores.from_model[0] else None,
            "horizon_s": scores.horizon_s,
            "last_tick": None if last is None else last.to_dict(),
        }

    # -- loops -----------------------------------------------------------------------------

    async def _consume_loop(self) -> None:
        backoff = 0.1
        while True:
            try:
                delivery = await asyncio.to_thread(self.consumer.read, self.options.read_block_ms)
            except redis.RedisError as e:
                self._went_blind()
                delay = self._rng.uniform(backoff / 2, backoff)
                log.warning("event log unreachable (%s); retrying in %.2f s", e, delay)
                await asyncio.sleep(delay)
                backoff = min(backoff * 2, self.options.max_backoff_s)
                continue
            if not self._log_reachable:
                log.info("event log reachable again")
            backoff = 0.1
            self._log_reachable = True
            self._last_read = time.monotonic()
            self.telemetry.ready.set(1)
            if not len(delivery):
                continue
            events, ids = delivery.after(self.watermark)
            now = self.clock.now()
            commands: list[Command] = []
            for event in events:
                commands += self.engine.on_event(event, now)
            if ids:
                self.watermark = ids[-1]
            self.telemetry.events.inc(len(events))
            self.telemetry.redelivered.inc(len(delivery.ids) - len(ids))
            self.telemetry.dead_letters.inc(len(delivery.dead))
            try:
                await self._save()
                await asyncio.to_thread(self.consumer.ack, delivery.all_ids)
            except redis.RedisError as e:
                log.warning("could not save or acknowledge (%s): entries will come again", e)
            self._dispatch(commands)

    async def _tick_loop(self) -> None:
        interval = self.engine.config.tick_interval_s
        while True:
            await asyncio.sleep(self.clock.wall_delay(interval))
            if not self.sees_events:
                self.telemetry.skipped_ticks.inc()
                self.telemetry.ready.set(0)
                continue
            if not self.is_leader() or not await self._log_answers():
                continue
            started = time.perf_counter()
            now = self.clock.now()
            commands = self.engine.tick(now)
            self.telemetry.scoring.observe(time.perf_counter() - started)
            self.telemetry.ticks.inc()
            status = self.engine.status(now)
            self.history.record(status)
            self.refresh_telemetry(status)
            with contextlib.suppress(redis.RedisError):
                await self._save()
            self._dispatch(commands)

    async def _release_memory_loop(self) -> None:
        while True:
            await asyncio.sleep(self.options.release_memory_every_s)
            await asyncio.to_thread(release_free_memory)

    async def _reconcile_loop(self) -> None:
        while True:
            await asyncio.sleep(self.clock.wall_delay(self.options.reconcile_every_s))
            with contextlib.suppress(Exception):
                await self.reconcile_once()

    async def reconcile_once(self) -> None:
        if not self.is_leader():
            return
        listed_at, asked_at = time.monotonic(), self.clock.now()
        try:
            listed = await self.provider.list_nodes()
        except ProviderError as e:
            log.warning("cannot list the provider's nodes: %s", e)
            return
        if listed is None:
            if self.reconcile_unavailable is None:
                self.reconcile_unavailable = RECONCILE_UNAVAILABLE
                log.warning("reconcile is unavailable: %s", RECONCILE_UNAVAILABLE)
            return
        self.reconcile_unavailable = None
        now = self.clock.now()
        pool = self.engine.pool
        plan = reconcile(
            pool.nodes(),
            listed,
            now,
            gone=pool.gone_ids(),
            listed_at=asked_at,
            speed=1.0 / self.clock.wall_delay(1.0),
        )
        for node_id, status in plan.adopt:
            log.warning("adopting node %s (%s) the pool did not know", node_id, status.value)
        for node_id in plan.ready:
            log.warning("node %s is ready at the provider (its event was lost)", node_id)
        for node_id in plan.forget:
            log.warning("node %s is gone at the provider; forgetting it", node_id)
        for token in plan.expire:
            log.warning("request %s got no node in time; counting it failed", token)
        commands = self.engine.reconciled(plan, now)
        again = [n for n in plan.terminate if self.commands.stale_delete(n, listed_at)]
        for node_id in again:
            log.warning("node %s is still alive at the provider; terminating it again", node_id)
            commands.append(TerminateNode(node_id))
        for action, items in (
            ("adopt", plan.adopt),
            ("ready", plan.ready),
            ("forget", plan.forget),
            ("expire", plan.expire),
            ("terminate", again),
        ):
            if items:
                self.telemetry.reconciled.labels(action=action).inc(len(items))
        self.commands.forget_deletes()
        if plan:
            await self._save_quietly()
        self._dispatch(commands)

    async def _model_loop(self) -> None:
        while True:
            if self.watcher is not None:
                await self.watcher.check()
            if self.challenger is not None:
                await self.challenger.check()
            await asyncio.sleep(self.options.model_check_every_s)

    async def _evidence_loop(self) -> None:
        while True:
            await asyncio.sleep(self.clock.wall_delay(self.options.live_log_every_s))
            await self.log_evidence()

    async def log_evidence(self) -> int:
        """Log the champion's and the challenger's live metrics over the shortest live
        window to their runs, when this process leads; the versions logged."""
        if self.evidence is None or self._engine is None or not self.is_leader():
            return 0
        now = self.clock.now()
        engine = self._engine
        window_s = min(engine.config.live_metrics_windows_s)
        return await self.evidence.log(engine.live(now), window_s, now)

    # -- commands --------------------------------------------------------------------------

    def _dispatch(self, commands: list[Command]) -> None:
        for refusal in self.engine.take_refusals():
            log.warning(
                "refused a need of %.2f nodes (%s; the demand supports at most %.2f): holding "
                "the last sound need; demand %s",
                refusal.need,
                refusal.reason.value,
                refusal.bound,
                refusal.demand,
            )
        if self.is_leader():
            self.commands.execute(commands)
        else:  # not ours to act on
            self.engine.withdraw(commands, self.clock.now())

    # -- internals -------------------------------------------------------------------------

    def _spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.create_task(coroutine, name=name))

    async def _save(self) -> None:
        async with self._save_lock:
            state = self.engine.to_dict()
            await asyncio.to_thread(self.store.save, state, self.watermark, self.clock.now())

    async def _save_quietly(self) -> None:
        with contextlib.suppress(redis.RedisError):
            await self._save()

    async def _log_answers(self) -> bool:
        """Whether the event log answers now: a tick decides only on a view that is current
        (the last read may be up to a blocking read old, and Redis may have died since)."""
        try:
            await asyncio.to_thread(self.event_log.client.ping)
        except redis.RedisError:
            self._went_blind()
            self.telemetry.skipped_ticks.inc()
            return False
        return True

    def _blind_because(self) -> str | None:
        """Why the service does not see events (None: it does)."""
        if self._engine is None:
            return "starting: the saved state is not restored yet"
        if not self._tasks or self._tasks[0].done():
            return "the event log consumer is not running"
        if not self._log_reachable:
            if self._last_read is None:
                return "the event log has not been read yet"
            return "the event log is unreachable"
        stale = self.options.stale_after_s
        if self._last_read is None or time.monotonic() - self._last_read >= stale:
            return f"no read of the event log succeeded for {stale:g} s"
        return None

    def _went_blind(self) -> None:
        """The event log cannot be reached: not ready, no ticks, until a read succeeds."""
        if self._log_reachable:
            self.telemetry.log_outages.inc()
        self._log_reachable = False
        self.telemetry.ready.set(0)
