"""Wiring of the live service: settings in, a running LiveService and its API out."""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.retry
from fastapi import FastAPI
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry

from features.bridge import Bridge
from features.online import OnlineFeatures
from models.heuristic import HeuristicScorer
from models.model_scorer import ModelScorer
from models.registry import CHALLENGER
from provisioner import wiring
from provisioner.settings import Settings
from service.app import create_app
from service.config import ServiceConfig
from service.consumer import StreamConsumer
from service.engine import Engine
from service.http_provider import HttpNodeProvider
from service.lease import FencedProvider, Leadership, Lease
from service.live import LiveOptions, LiveService
from service.model_watch import RegistryWatcher
from service.provider import NodeProvider
from service.state_store import StateStore
from simulation.nodes.boot import parse_boot_time
from simulation.nodes.fleet import NodeFleet
from simulation.nodes.in_process import InProcessNodes
from simulation.nodes.live_fleet import LiveFleet

log = logging.getLogger(__name__)


def service_config(settings: Settings) -> ServiceConfig:
    return ServiceConfig(
        min_ready=settings.min_ready,
        scale_up_threshold=settings.scale_up_threshold,
        scale_down_threshold=settings.scale_down_threshold,
        max_idle_s=settings.max_idle_s,
        target_instant_rate=settings.target_instant_rate,
        max_nodes=settings.max_nodes,
        lead_time_s=settings.lead_time_s,
        plan_moments=settings.plan_moments,
        boot_prior_s=settings.boot_prior_s,
        tick_interval_s=settings.tick_interval_s,
        user_retention_s=settings.user_retention_hours * 3600.0,
        prediction_log_max_per_tick=settings.prediction_log_max_per_tick,
        prediction_log_keep_settled=settings.prediction_log_keep_settled,
        live_metrics_bucket_s=settings.live_metrics_bucket_s,
        live_metrics_windows_s=settings.live_metrics_windows_s,
    )


REDIS_RETRIES = 3
"""Quick retries of one Redis command (about 0.5 s at most) before it raises: the service
has its own reconnect loop, and must notice within a tick that it no longer sees events."""
REDIS_SOCKET_TIMEOUT_S = 5.0
"""Longer than the consumer's blocking read (0.5 s)."""


def redis_clients(url: str) -> tuple[redis.Redis, redis.asyncio.Redis]:
    """The service's synchronous and asyncio clients for ``url``."""
    options: dict[str, Any] = {
        "socket_connect_timeout": 2.0,
        "socket_timeout": REDIS_SOCKET_TIMEOUT_S,
    }
    client = redis.Redis.from_url(
        url,
        retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.25), REDIS_RETRIES),
        **options,
    )
    async_client = redis.asyncio.from_url(
        url,
        retry=redis.asyncio.retry.Retry(
            ExponentialWithJitterBackoff(base=0.05, cap=0.25), REDIS_RETRIES
        ),
        **options,
    )
    return client, async_client


def leader_lease(settings: Settings, client: redis.Redis) -> Leadership | None:
    """With ``leader_lease_s`` set (replicas), the lease only whose holder scales."""
    if settings.leader_lease_s is None:
        return None
    lease = Lease(
        client,
        f"{settings.key_prefix}service:leader",
        ttl_ms=max(1, round(settings.leader_lease_s * 1000)),
        holder=f"{settings.instance}@{socket.gethostname()}-{os.getpid()}",
    )
    if settings.bridge:
        log.warning(
            "leader lease on and bridging pub/sub: with several replicas, let one process "
            "bridge (PROVISIONER_BRIDGE=false on the others), or events are logged twice"
        )
    return Leadership(lease)


@dataclass
class Running:
    """What ``serve`` holds while the service runs."""

    service: LiveService
    app: FastAPI
    nodes: NodeProvider


@asynccontextmanager
async def running_service(settings: Settings, redis_url: str) -> AsyncIterator[Running]:
    """Build the service over ``redis_url``; stop the bridge and close clients on exit.

    The service itself is started and stopped by the app's lifespan.
    """
    wiring.quiet_mlflow()
    client, async_client = redis_clients(redis_url)
    clock = wiring.clock(settings)
    event_log = wiring.event_log(settings, client)
    nodes: NodeProvider
    if settings.node_api_url:
        nodes = HttpNodeProvider(settings.node_api_url)
    else:
        fleet = NodeFleet(parse_boot_time(settings.node_boot), random.Random())
        nodes = InProcessNodes(
            LiveFleet(fleet, async_client.publish, clock, channel_prefix=settings.channel_prefix)
        )
    fallback_horizon_s = wiring.serving_horizon_s(settings)
    scorer = ModelScorer(
        fallback=HeuristicScorer(horizon_s=fallback_horizon_s), horizon_s=fallback_horizon_s
    )
    shadow = ModelScorer(
        fallback=HeuristicScorer(horizon_s=fallback_horizon_s), horizon_s=fallback_horizon_s
    )
    registry = wiring.model_registry(settings)
    watcher = RegistryWatcher(scorer, registry)
    # The challenger is scored in shadow (never decides); without one the shadow holds no
    # model and the engine logs nothing for it.
    challenger = RegistryWatcher(shadow, registry, CHALLENGER, optional=True)
    config = service_config(settings)

    def engine(saved: dict[str, Any] | None, features: OnlineFeatures) -> Engine:
        if saved is None:
            return Engine(scorer, config, features=features, shadow=shadow)
        return Engine.from_dict(saved, scorer, features=features, config=config, shadow=shadow)

    leadership = leader_lease(settings, client)
    provider = nodes if leadership is None else FencedProvider(nodes, leadership)
    service = LiveService(
        engine_factory=engine,
        event_log=event_log,
        consumer=StreamConsumer(
            event_log, f"service-{settings.instance}", f"{socket.gethostname()}-{os.getpid()}"
        ),
        store=StateStore(client, f"{settings.key_prefix}service:{settings.instance}:state"),
        provider=provider,
        clock=clock,
        options=LiveOptions(
            warm_history_s=settings.warm_history_hours * 3600.0,
            model_check_every_s=settings.model_check_s,
            live_log_every_s=settings.live_log_s,
            release_memory_every_s=settings.release_memory_s,
        ),
        watcher=watcher,
        challenger=challenger,
        evidence=registry,
        leader=None if leadership is None else leadership.is_leader,
    )
    token = settings.admin_token.get_secret_value() if settings.admin_token else None
    app = create_app(
        service,
        admin_token=token,
        on_startup=[] if leadership is None else [leadership.begin],
        on_shutdown=[] if leadership is None else [leadership.stop],  # after the service
    )
    stop = threading.Event()
    bridge_thread: threading.Thread | None = None
    if settings.bridge:
        bridge = Bridge(client, event_log, channel_prefix=settings.channel_prefix, clock=clock)
        bridge_thread = threading.Thread(target=bridge.run, args=(stop,), name="bridge")
        bridge_thread.start()
    try:
        yield Running(service, app, nodes)
    finally:
        stop.set()
        if bridge_thread is not None:
            bridge_thread.join(5)
        await nodes.aclose()
        await async_client.aclose()
        client.close()
