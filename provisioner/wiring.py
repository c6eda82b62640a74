"""Wiring: turns Settings into the clients and objects the other packages are handed."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import redis

from features.clock import ScaledClock
from features.eventlog import EventLog, LogKeys, Retention
from features.events import Limits
from models.defaults import DEFAULT_HORIZON_S
from models.horizon import HorizonChoice, choose_horizon
from provisioner.embedded_redis import EmbeddedRedis
from provisioner.settings import Settings

if TYPE_CHECKING:  # heavy (MLflow, LightGBM): imported where used, keeping the CLI fast
    from models.registry import ModelRegistry
    from training.dataset import DatasetSpec
    from training.gates import Tolerances
    from training.live_gates import LiveRule
    from training.tracking import TrackingConfig
    from training.train import TrainConfig


def limits(settings: Settings) -> Limits:
    return Limits(
        max_payload_bytes=settings.max_payload_bytes,
        max_id_length=settings.max_id_length,
        max_future_skew_s=settings.max_future_skew_s,
    )


def clock(settings: Settings) -> ScaledClock:
    if settings.speed == 1.0:
        return ScaledClock()
    anchor = settings.clock_anchor if settings.clock_anchor is not None else time.time()
    return ScaledClock(anchor=anchor, speed=settings.speed)


def embedded_redis(settings: Settings) -> EmbeddedRedis:
    return EmbeddedRedis(settings.home / "redis", port=settings.embedded_redis_port)


@contextmanager
def redis_url(settings: Settings) -> Iterator[str]:
    """``REDIS_URL``, or the URL of the embedded server (started if needed, then stopped)."""
    if settings.redis_url:
        yield settings.redis_url
        return
    with embedded_redis(settings) as server:
        yield server.url


@contextmanager
def redis_client(settings: Settings) -> Iterator[redis.Redis]:
    """A client for ``REDIS_URL``, or for the embedded server (started if needed)."""
    with redis_url(settings) as url:
        client = redis.Redis.from_url(url)
        try:
            yield client
        finally:
            client.close()


def event_log(settings: Settings, client: redis.Redis) -> EventLog:
    return EventLog(
        client,
        LogKeys(settings.key_prefix),
        retention=Retention(settings.stream_max_len, settings.stream_max_age_s),
        limits=limits(settings),
    )


# -- model lifecycle -------------------------------------------------------------------------


def quiet_mlflow() -> None:
    """MLflow's INFO logs would interleave with progress bars; bound its HTTP retries.

    MLflow retries an unreachable server with backoff for minutes by default; a cron job
    or a hot reload should fail within seconds. Explicit environment settings win.
    """
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # read when mlflow is imported
    logging.getLogger("alembic").setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")


def tracking_uri(settings: Settings) -> str:
    """``MLFLOW_TRACKING_URI``, or an SQLite store under the home."""
    if settings.mlflow_tracking_uri:
        return settings.mlflow_tracking_uri
    return f"sqlite:///{settings.home / 'mlflow.db'}"


def artifact_location(settings: Settings) -> str | None:
    """Where new experiments keep artifacts: under the home, unless a server decides.

    A tracking server (``http(s)://``, ``databricks``) has its own artifact root. For a
    database or file store, the location is set here when the experiment is created;
    otherwise MLflow would put artifacts in ``./mlruns`` of whatever the working folder is.
    """
    uri = tracking_uri(settings)
    if uri.startswith(("http://", "https://", "databricks")):
        return None
    return (settings.home / "mlartifacts").as_uri()


def tracking(settings: Settings) -> TrackingConfig:
    from training.tracking import TrackingConfig

    return TrackingConfig(
        tracking_uri=tracking_uri(settings),
        experiment=settings.experiment_name,
        model_name=settings.model_name,
        artifact_location=artifact_location(settings),
    )


def model_registry(settings: Settings) -> ModelRegistry:
    from models.registry import ModelRegistry

    return ModelRegistry(tracking_uri(settings), settings.model_name)


def horizon(settings: Settings, given_s: float | None, boots: Sequence[float]) -> HorizonChoice:
    """The label horizon of a training job: ``given_s`` (``--horizon``), else
    ``PROVISIONER_HORIZON_S``, else the service's lead time for ``boots``, the node boots of
    the training range (``models.horizon``; the default when there are none)."""
    return choose_horizon(given_s if given_s is not None else settings.horizon_s, boots)


def serving_horizon_s(settings: Settings) -> float:
    """The horizon the service's fallback scores are about while no model (which carries its
    own) is loaded: ``PROVISIONER_HORIZON_S``, else the default."""
    return settings.horizon_s if settings.horizon_s is not None else DEFAULT_HORIZON_S


def dataset_spec(settings: Settings, horizon_s: float) -> DatasetSpec:
    from training.dataset import DatasetSpec

    return DatasetSpec(
        horizon_s=horizon_s,
        every_s=settings.dataset_every_s,
        quiet_after_s=settings.dataset_quiet_after_s,
        quiet_stride=settings.dataset_quiet_stride,
    )


def train_config(settings: Settings) -> TrainConfig:
    from training.train import TrainConfig

    return TrainConfig(
        calibration=settings.calibration,
        seed=settings.train_seed,
        min_positives=settings.train_min_positives,
    )


def tolerances(settings: Settings) -> Tolerances:
    from training.gates import Tolerances

    return Tolerances(
        log_loss=settings.promote_log_loss_tolerance,
        brier=settings.promote_brier_tolerance,
        roc_auc=settings.promote_auc_tolerance,
    )


def live_rule(settings: Settings) -> LiveRule:
    from training.live_gates import LiveRule

    return LiveRule(
        min_settled=settings.live_min_settled,
        brier_tolerance=settings.live_brier_tolerance,
        max_age_s=settings.live_max_age_s,
    )


def actor(settings: Settings) -> str:
    """Who acts, for audit tags: the ``actor`` setting, else the login name."""
    if settings.actor:
        return settings.actor
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
