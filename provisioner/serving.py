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
from fastapi import FastAPI

from features.bridge import Bridge
from features.online import OnlineFeatures
from models.heuristic import HeuristicScorer
from models.model_scorer import ModelScorer
from provisioner import runtime
from provisioner.settings import Settings
from service.app import create_app
from service.config import ServiceConfig
from service.consumer import StreamConsumer
from service.engine import Engine
from service.http_provider import HttpNodeProvider
from service.live import LiveOptions, LiveService
from service.model_watch import RegistryWatcher
from service.provider import NodeProvider
from service.state_store import StateStore
from simulation.nodes.boot import parse_boot_time
from simulation.nodes.fleet import NodeFleet
from simulation.nodes.live import LiveFleet
from simulation.nodes.provider import InProcessNodes

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
        tick_interval_s=settings.tick_interval_s,
    )


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
    runtime.quiet_mlflow()
    client = redis.Redis.from_url(redis_url)
    async_client = redis.asyncio.from_url(redis_url)
    clock = runtime.clock(settings)
    log_ = runtime.event_log(settings, client)
    nodes: NodeProvider
    if settings.node_api_url:
        nodes = HttpNodeProvider(settings.node_api_url)
    else:
        fleet = NodeFleet(parse_boot_time(settings.node_boot), random.Random())
        nodes = InProcessNodes(
            LiveFleet(fleet, async_client.publish, clock, channel_prefix=settings.channel_prefix)
        )
    scorer = ModelScorer(
        fallback=HeuristicScorer(horizon_s=settings.horizon_s), horizon_s=settings.horizon_s
    )
    watcher = RegistryWatcher(scorer, runtime.model_registry(settings))
    config = service_config(settings)

    def engine(saved: dict[str, Any] | None, features: OnlineFeatures) -> Engine:
        if saved is None:
            return Engine(scorer, config, features=features)
        return Engine.from_dict(saved, scorer, features=features, config=config)

    service = LiveService(
        engine_factory=engine,
        log_=log_,
        consumer=StreamConsumer(
            log_, f"service-{settings.instance}", f"{socket.gethostname()}-{os.getpid()}"
        ),
        store=StateStore(client, f"{settings.key_prefix}service:{settings.instance}:state"),
        provider=nodes,
        clock=clock,
        options=LiveOptions(
            warm_history_s=settings.warm_history_hours * 3600.0,
            model_check_every_s=settings.model_check_s,
        ),
        watcher=watcher,
    )
    token = settings.admin_token.get_secret_value() if settings.admin_token else None
    app = create_app(service, admin_token=token)
    stop = threading.Event()
    bridge_thread: threading.Thread | None = None
    if settings.bridge:
        bridge = Bridge(client, log_, channel_prefix=settings.channel_prefix, clock=clock)
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
