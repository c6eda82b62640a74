"""The live shell: feeds the decision core from Redis and carries out its commands.

One asyncio loop owns the engine (nothing else touches it); blocking Redis calls run in
worker threads. Tasks:

- **consume**: read the event log through the consumer group, apply new entries (those
  above the watermark), save the state with the new watermark, then acknowledge;
- **tick**: every ``tick_interval_s`` of the clock, let the engine decide; skipped while
  the service cannot see events (no scale-down while blind);
- **commands**: each create/terminate runs as its own task against the node provider,
  and its outcome goes back to the engine;
- **reconcile**: every ``reconcile_every_s``, converge with the provider's node list
  (``service.reconcile``);
- **model**: when a model watcher is given, let it check the registry now and then.

At start the state saved in Redis is restored and the online features are rebuilt by
replaying the recent event log up to the watermark. A service that finds no state starts
its pool empty and applies only what is appended from then on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import redis

from features.clock import Clock
from features.definitions import FEATURE_NAMES
from features.eventlog import EventLog
from features.events import NodeStatusChanged
from features.online import OnlineFeatures
from features.table import to_ms
from models.scoring import Scores
from service.commands import Command, RequestNode, TerminateNode
from service.consumer import StreamConsumer, entry_key
from service.engine import Engine
from service.history import History
from service.provider import NodeProvider, ProviderError
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
    warm_history_s: float = 7 * 86_400.0
    """How much of the event log rebuilds the features at start."""
    read_block_ms: int = 500
    stale_after_s: float = 5.0
    """Not ready when no read of the event log succeeded for this long (wall seconds)."""
    reconcile_every_s: float = 30.0
    model_check_every_s: float = 30.0


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
    ) -> None:
        self.log = log_
        self.consumer = consumer
        self.store = store
        self.provider = provider
        self.clock = clock
        self.telemetry = telemetry if telemetry is not None else Telemetry()
        self.options = options if options is not None else LiveOptions()
        self.watcher = watcher
        self._engine_factory = engine_factory
        self._engine: Engine | None = None
        self.watermark: str | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._inflight: set[asyncio.Task[None]] = set()
        self._last_read: float | None = None
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
        await self._save()
        log.info(
            "service started: %s state, %d events replayed into the features, watermark %s",
            "fresh" if saved is None else "restored",
            replayed,
            self.watermark,
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
        fresh = self._last_read is not None and (
            time.monotonic() - self._last_read < self.options.stale_after_s
        )
        alive = bool(self._tasks) and not self._tasks[0].done()
        return self._engine is not None and fresh and alive

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
                log.warning("event log unreachable (%s); retrying in %.1f s", e, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.1
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
            started = time.perf_counter()
            now = self.clock.now()
            commands = self.engine.tick(now)
            self.telemetry.scoring.observe(time.perf_counter() - started)
            self.telemetry.ticks.inc()
            status = self.engine.status(now)
            self.telemetry.observe_status(status, self.engine.pool.metrics.waits)
            self.history.record(status)
            if self.watcher is not None:
                self.telemetry.observe_fallbacks(self.watcher.fallbacks())
            with contextlib.suppress(redis.RedisError):
                await self._save()
            self._dispatch(commands)

    async def _reconcile_loop(self) -> None:
        while True:
            await asyncio.sleep(self.clock.wall_delay(self.options.reconcile_every_s))
            with contextlib.suppress(Exception):
                await self.reconcile_once()

    async def reconcile_once(self) -> None:
        try:
            listed = await self.provider.list_nodes()
        except ProviderError as e:
            log.warning("cannot list the provider's nodes: %s", e)
            return
        if listed is None:
            return
        now = self.clock.now()
        plan = reconcile(self.engine.pool.nodes(), listed, now)
        commands: list[Command] = []
        for node_id, status in plan.adopt:
            log.warning("adopting node %s (%s) the pool did not know", node_id, status.value)
            commands += self.engine.on_event(NodeStatusChanged(now, node_id, status), now)
        for node_id in plan.forget:
            log.warning("node %s is gone at the provider; forgetting it", node_id)
            self.engine.node_deleted(node_id, now)
        for token in plan.expire:
            log.warning("request %s got no node in time; counting it failed", token)
            self.engine.request_failed(token, now)
        for action, items in (
            ("adopt", plan.adopt),
            ("forget", plan.forget),
            ("expire", plan.expire),
        ):
            if items:
                self.telemetry.reconciled.labels(action=action).inc(len(items))
        if plan:
            await self._save()
        self._dispatch(commands)

    async def _model_loop(self) -> None:
        assert self.watcher is not None
        while True:
            await self.watcher.check()
            await asyncio.sleep(self.options.model_check_every_s)

    # -- commands --------------------------------------------------------------------------

    def _dispatch(self, commands: list[Command]) -> None:
        for command in commands:
            if isinstance(command, RequestNode):
                self._run(self._create(command.token))
            elif isinstance(command, TerminateNode):
                self._run(self._terminate(command.node_id))

    async def _create(self, token: str) -> None:
        try:
            node_id = await self.provider.create()
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
            self.telemetry.commands.labels(kind="terminate", outcome="failed").inc()
            return
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
