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
  and its outcome goes back to the engine;
- **reconcile**: every ``reconcile_every_s``, converge with the provider's node list
  (``service.reconcile``);
- **model**: when a model watcher is given, let it check the registry now and then.

At start the state saved in Redis is restored and the online features are rebuilt by
replaying the recent event log up to the watermark. Entries a dead predecessor left
pending are taken over and applied (those at or below the watermark are skipped), and
node requests that were in flight when it died are counted failed at once: no task is
left to receive their answer, and a node they did create is adopted from its status
event or by reconciliation. A service that finds no state starts its pool empty and
applies only what is appended from then on.

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
from typing import Any, Protocol

import numpy as np
import redis

from features.clock import Clock
from features.definitions import FEATURE_NAMES
from features.eventlog import EventLog
from features.events import NodeStatus, NodeStatusChanged
from features.online import OnlineFeatures
from features.table import to_ms
from models.scoring import Scores
from service.breaker import CircuitBreaker
from service.commands import Command, RequestNode, TerminateNode
from service.consumer import StreamConsumer, entry_key
from service.defaults import DEFAULT_MODEL_CHECK_S, DEFAULT_WARM_HISTORY_S
from service.engine import Engine
from service.history import History
from service.provider import CircuitOpen, NodeProvider, ProviderError
from service.reconcile import reconcile
from service.state_store import StateStore
from service.telemetry import Telemetry

log = logging.getLogger(__name__)

EngineFactory = Callable[[dict[str, Any] | None, OnlineFeatures], Engine]
"""Builds the engine from saved state (None: fresh) and the rebuilt features."""


class ModelWatcher(Protocol):
    """Keeps the scorer's model in step with the registry (see models.model_scorer)."""

    async def check(self) -> None:
        """Load a new champion in the background and swap it in; never raises."""
        ...

    def info(self) -> dict[str, Any]: ...

    def fallbacks(self) -> dict[str, int]: ...


@dataclass(frozen=True, slots=True)
class LiveOptions:
    warm_history_s: float = DEFAULT_WARM_HISTORY_S
    """How much of the event log rebuilds the features at start."""
    read_block_ms: int = 500
    stale_after_s: float = 5.0
    """Not ready when no read of the event log succeeded for this long (wall seconds)."""
    reconcile_every_s: float = 30.0
    model_check_every_s: float = DEFAULT_MODEL_CHECK_S
    max_backoff_s: float = 2.0
    """Longest wait (wall seconds) between two attempts to reach an unreachable event log."""


class LiveService:
    def __init__(
        self,
        *,
        engine_factory: EngineFactory,
        log_: EventLog,
        consumer: StreamConsumer,
        store: StateStore,
        provider: NodeProvider,
        clock: Clock,
        telemetry: Telemetry | None = None,
        options: LiveOptions | None = None,
        watcher: ModelWatcher | None = None,
        leader: Callable[[], bool] | None = None,
    ) -> None:
        self.log = log_
        self.consumer = consumer
        self.store = store
        self.provider = provider
        self.clock = clock
        self.telemetry = telemetry if telemetry is not None else Telemetry()
        self.options = options if options is not None else LiveOptions()
        self.watcher = watcher
        self.leader = leader
        """Whether this process may act on the pool now (None: always)."""
        breaker = getattr(provider, "breaker", None)
        self.breaker = breaker if isinstance(breaker, CircuitBreaker) else None
        """The provider's circuit breaker, when it has one (reported, never driven here)."""
        self._engine_factory = engine_factory
        self._engine: Engine | None = None
        self.watermark: str | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._inflight: set[asyncio.Task[None]] = set()
        self._last_read: float | None = None
        self._log_reachable = False
        """False from a failed read of the event log until the next one succeeds."""
        self._deletes: dict[str, float | None] = {}
        """Node id -> when its last delete finished (monotonic; None: still in flight).
        Reconciliation repeats a delete only when the listing it acts on came after it."""
        self._rng = random.Random()
        self._save_lock = asyncio.Lock()
        self.started_at: float | None = None
        self.history = History()
        """The pool after each tick, for the dashboard (``GET /v1/history``)."""

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("the service has not started")
        return self._engine

    async def start(self) -> None:
        saved = await asyncio.to_thread(self.store.load)
        if saved is None:
            self.watermark = await asyncio.to_thread(self._last_entry_id)
        else:
            self.watermark = saved.watermark
        features = OnlineFeatures()
        replayed = await asyncio.to_thread(self._warm, features, self.watermark)
        self._engine = self._engine_factory(None if saved is None else saved.engine, features)
        await asyncio.to_thread(self.consumer.ensure_group, "$" if saved is None else "0")
        taken = await asyncio.to_thread(self.consumer.take_over)
        orphans = self._expire_restored_requests()
        await self._save()
        log.info(
            "service started: %s state, %d events replayed into the features, watermark %s, "
            "%d pending entries taken over, %d orphaned node requests failed",
            "fresh" if saved is None else "restored",
            replayed,
            self.watermark,
            taken,
            orphans,
        )
        self.started_at = self.clock.now()
        self._spawn(self._consume_loop(), "consume")
        self._spawn(self._tick_loop(), "tick")
        self._spawn(self._reconcile_loop(), "reconcile")
        if self.watcher is not None:
            self._spawn(self._model_loop(), "model")

    async def stop(self) -> None:
        for task in [*self._tasks, *self._inflight]:
            task.cancel()
        for task in [*self._tasks, *self._inflight]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        self._inflight.clear()
        if self._engine is not None:
            with contextlib.suppress(redis.RedisError):
                await self._save()

    # -- what the API reads ----------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Sees events: the last read of the event log succeeded, recently enough."""
        fresh = (
            self._log_reachable
            and self._last_read is not None
            and time.monotonic() - self._last_read < self.options.stale_after_s
        )
        alive = bool(self._tasks) and not self._tasks[0].done()
        return self._engine is not None and fresh and alive

    def is_leader(self) -> bool:
        return self.leader is None or self.leader()

    def provider_status(self) -> dict[str, Any]:
        """The node provider's health as the service sees it (its circuit breaker)."""
        breaker = None if self.breaker is None else self.breaker.to_dict(time.monotonic())
        in_flight = sum(1 for done in self._deletes.values() if done is None)
        return {"breaker": breaker, "deletes_in_flight": in_flight}

    def refresh_telemetry(self) -> None:
        """Gauges read from other objects (the scorer's fallbacks, the breaker): now."""
        self.telemetry.ready.set(1 if self.ready else 0)
        if self.watcher is not None:
            self.telemetry.observe_fallbacks(self.watcher.fallbacks())
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
            if not self.ready:
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
            self.telemetry.observe_status(status, self.engine.pool.metrics.waits)
            self.history.record(status)
            self.refresh_telemetry()
            with contextlib.suppress(redis.RedisError):
                await self._save()
            self._dispatch(commands)

    async def _reconcile_loop(self) -> None:
        while True:
            await asyncio.sleep(self.clock.wall_delay(self.options.reconcile_every_s))
            with contextlib.suppress(Exception):
                await self.reconcile_once()

    async def reconcile_once(self) -> None:
        if not self.is_leader():
            return
        listed_at = time.monotonic()
        try:
            listed = await self.provider.list_nodes()
        except ProviderError as e:
            log.warning("cannot list the provider's nodes: %s", e)
            return
        if listed is None:
            return
        now = self.clock.now()
        pool = self.engine.pool
        plan = reconcile(pool.nodes(), listed, now, gone=pool.gone_ids())
        commands: list[Command] = []
        for node_id, status in plan.adopt:
            log.warning("adopting node %s (%s) the pool did not know", node_id, status.value)
            commands += self.engine.on_event(NodeStatusChanged(now, node_id, status), now)
        for node_id in plan.ready:
            log.warning("node %s is ready at the provider (its event was lost)", node_id)
            commands += self.engine.on_event(NodeStatusChanged(now, node_id, NodeStatus.READY), now)
        for node_id in plan.forget:
            log.warning("node %s is gone at the provider; forgetting it", node_id)
            self.engine.node_deleted(node_id, now)
        for token in plan.expire:
            log.warning("request %s got no node in time; counting it failed", token)
            self.engine.request_failed(token, now)
        again = [node_id for node_id in plan.terminate if self._stale_delete(node_id, listed_at)]
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
        self._forget_deletes()
        if plan:
            await self._save_quietly()
        self._dispatch(commands)

    async def _model_loop(self) -> None:
        assert self.watcher is not None
        while True:
            await self.watcher.check()
            await asyncio.sleep(self.options.model_check_every_s)

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
        leading = self.is_leader()
        for command in commands:
            if isinstance(command, RequestNode):
                if leading:
                    self._run(self._create(command.token))
                else:  # not ours to act on: the request is dropped, nothing was created
                    self.engine.request_failed(command.token, self.clock.now())
            elif isinstance(command, TerminateNode) and leading:
                # (not leading: the node stays terminating; the leader's reconciliation
                # terminates it if it is still alive)
                self._deletes[command.node_id] = None
                self._run(self._terminate(command.node_id))

    async def _create(self, token: str) -> None:
        try:
            node_id = await self.provider.create()
        except CircuitOpen as e:
            log.info("node request %s refused: %s", token, e)
            self.engine.request_failed(token, self.clock.now())
            self.telemetry.commands.labels(kind="create", outcome="rejected").inc()
        except ProviderError as e:
            log.warning("node request %s failed: %s", token, e)
            self.engine.request_failed(token, self.clock.now())
            self.telemetry.commands.labels(kind="create", outcome="failed").inc()
        else:
            self.engine.node_created(token, node_id, self.clock.now())
            self.telemetry.commands.labels(kind="create", outcome="ok").inc()
        await self._save_quietly()

    async def _terminate(self, node_id: str) -> None:
        try:
            known = await self.provider.terminate(node_id)
        except ProviderError as e:
            log.warning("terminating %s failed: %s (reconciliation will see it)", node_id, e)
            outcome = "rejected" if isinstance(e, CircuitOpen) else "failed"
            self.telemetry.commands.labels(kind="terminate", outcome=outcome).inc()
            return
        finally:
            self._deletes[node_id] = time.monotonic()
        self.telemetry.commands.labels(kind="terminate", outcome="ok").inc()
        if not known:
            self.engine.node_deleted(node_id, self.clock.now())
            await self._save_quietly()

    # -- internals -------------------------------------------------------------------------

    def _spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.create_task(coroutine, name=name))

    def _run(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _save(self) -> None:
        async with self._save_lock:
            state = self.engine.to_dict()
            await asyncio.to_thread(self.store.save, state, self.watermark, self.clock.now())

    async def _save_quietly(self) -> None:
        with contextlib.suppress(redis.RedisError):
            await self._save()

    def _stale_delete(self, node_id: str, listed_at: float) -> bool:
        """Whether a listing made at ``listed_at`` that shows ``node_id`` alive means its
        delete did not happen (rather than that the delete finished after the listing)."""
        if node_id not in self._deletes:
            return True
        done = self._deletes[node_id]
        return done is not None and done < listed_at

    def _forget_deletes(self) -> None:
        """Drop what is known of the deletes of nodes the pool no longer holds."""
        held = {node.node_id for node in self.engine.pool.nodes()}
        for node_id in [n for n, done in self._deletes.items() if done and n not in held]:
            del self._deletes[node_id]

    async def _log_answers(self) -> bool:
        """Whether the event log answers now: a tick decides only on a view that is current
        (the last read may be up to a blocking read old, and Redis may have died since)."""
        try:
            await asyncio.to_thread(self.log.client.ping)
        except redis.RedisError:
            self._went_blind()
            self.telemetry.skipped_ticks.inc()
            return False
        return True

    def _went_blind(self) -> None:
        """The event log cannot be reached: not ready, no ticks, until a read succeeds."""
        if self._log_reachable:
            self.telemetry.log_outages.inc()
        self._log_reachable = False
        self.telemetry.ready.set(0)

    def _expire_restored_requests(self) -> int:
        """Fail the node requests a restored state holds: none has a task here to finish it."""
        now = self.clock.now()
        tokens = [n.token for n in self.engine.pool.nodes() if n.node_id is None and n.token]
        for token in tokens:
            log.warning("node request %s was in flight at the last stop; counting it failed", token)
            self.engine.request_failed(token, now)
        if tokens:
            self.telemetry.reconciled.labels(action="expire").inc(len(tokens))
        return len(tokens)

    def _last_entry_id(self) -> str | None:
        entries: Any = self.log.client.xrevrange(self.log.keys.stream, count=1)
        if not entries:
            return None
        entry_id = entries[0][0]
        return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)

    def _warm(self, features: OnlineFeatures, watermark: str | None) -> int:
        """Replay the recent log, up to the watermark, into the features."""
        if watermark is None:
            return 0
        mark = entry_key(watermark)
        since = self.clock.now() - self.options.warm_history_s
        replayed = 0
        for batch in self.log.read(since=since):
            for entry_id, event in zip(batch.ids, batch.events, strict=True):
                if entry_key(entry_id) > mark:
                    return replayed
                features.update(event)
                replayed += 1
        return replayed
