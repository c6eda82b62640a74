"""The one typed Settings object. Read once, here, and passed to everything else.

A setting that is a knob of a lower layer takes its default from that layer (``LogKeys``,
``Limits`` and ``ServiceConfig``'s fields; the boot spec; the constants of the light
``defaults`` modules of models, training and service): every default is written once.
"""

from __future__ import annotations

import math
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from features.eventlog import LogKeys
from features.events import Limits
from models.defaults import DEFAULT_MODEL_NAME
from models.model_types import DEFAULT_MODEL_TYPE, ModelType
from service.config import ServiceConfig
from service.defaults import (
    DEFAULT_LIVE_LOG_S,
    DEFAULT_MODEL_CHECK_S,
    DEFAULT_RELEASE_MEMORY_S,
    DEFAULT_WARM_HISTORY_S,
)
from service.plan import MAX_PLAN_MOMENTS
from simulation.nodes.boot import DEFAULT_BOOT_SPEC
from training.defaults import (
    DEFAULT_AUC_TOLERANCE,
    DEFAULT_BRIER_TOLERANCE,
    DEFAULT_CALIBRATION,
    DEFAULT_DASK_TIMEOUT_S,
    DEFAULT_EVERY_S,
    DEFAULT_EXPERIMENT,
    DEFAULT_LIVE_BRIER_TOLERANCE,
    DEFAULT_LIVE_MAX_AGE_S,
    DEFAULT_LIVE_MIN_SETTLED,
    DEFAULT_LOG_LOSS_TOLERANCE,
    DEFAULT_MIN_POSITIVES,
    DEFAULT_QUIET_AFTER_S,
    DEFAULT_QUIET_STRIDE,
    DEFAULT_TRAIN_SEED,
)

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


def default_of(owner: type[DataclassInstance], name: str) -> Any:
    """The default of the field ``name`` of the dataclass ``owner``."""
    return next(field.default for field in fields(owner) if field.name == name)


class Settings(BaseSettings):
    """Every knob of the service, read from the environment.

    Three variables keep their conventional names (``PROVISIONER_HOME``, ``REDIS_URL``,
    ``MLFLOW_TRACKING_URI``); every other one is ``PROVISIONER_`` plus the field name in
    upper case, e.g. ``PROVISIONER_NODE_API_URL``.
    """

    model_config = SettingsConfigDict(
        env_prefix="PROVISIONER_", extra="ignore", frozen=True, populate_by_name=True
    )

    home: Path = Field(
        default=Path(".provisioner"),
        validation_alias="PROVISIONER_HOME",
        description="Local state: embedded Redis data, MLflow store, artifacts.",
    )
    redis_url: str | None = Field(
        default=None,
        validation_alias="REDIS_URL",
        description="Redis server to use; unset starts an embedded server under home.",
    )
    mlflow_tracking_uri: str | None = Field(
        default=None,
        validation_alias="MLFLOW_TRACKING_URI",
        description="MLflow tracking store; unset uses SQLite under home.",
    )
    node_api_url: str | None = Field(
        default=None, description="Node API base URL; unset uses the built-in simulated one."
    )
    key_prefix: str = Field(
        default=default_of(LogKeys, "prefix"), description="Prefix of every Redis key we own."
    )
    channel_prefix: str = Field(
        default="", description="Prefix of the pub/sub channel names (empty: the seed's names)."
    )
    stream_max_len: int | None = Field(
        default=None, ge=1, description="Event-log retention by entry count (approximate)."
    )
    stream_max_age_s: float | None = Field(
        default=None, gt=0, description="Event-log retention by event age, seconds."
    )
    max_payload_bytes: int = Field(
        default=default_of(Limits, "max_payload_bytes"),
        ge=64,
        description="Larger payloads are rejected.",
    )
    max_id_length: int = Field(
        default=default_of(Limits, "max_id_length"),
        ge=1,
        description="Longer user/node ids are rejected.",
    )
    max_future_skew_s: float = Field(
        default=default_of(Limits, "max_future_skew_s"),
        ge=0,
        description="Timestamps further ahead of the clock are rejected.",
    )
    speed: float = Field(default=1.0, gt=0, description="Time acceleration of the shared clock.")
    clock_anchor: float | None = Field(
        default=None, description="Unix time at which the accelerated clock equals the wall."
    )
    embedded_redis_port: int = Field(
        default=0, ge=0, le=65535, description="Also listen on 127.0.0.1:PORT (0: socket only)."
    )

    # -- model lifecycle ---------------------------------------------------------------------
    model_name: str = Field(
        default=DEFAULT_MODEL_NAME,
        min_length=1,
        description="Registered model every training run adds a version to.",
    )
    experiment_name: str = Field(
        default=DEFAULT_EXPERIMENT, min_length=1, description="MLflow experiment of the runs."
    )
    horizon_s: float | None = Field(
        default=None,
        gt=0,
        description="Label horizon: predict a connect within this many s (unset: `train` and "
        "`retrain` choose it from the node boots logged in their range, by the service's "
        "lead-time rule).",
    )
    dataset_every_s: float = Field(
        default=DEFAULT_EVERY_S, gt=0, description="Spacing of the training cutoffs, seconds."
    )
    dataset_quiet_after_s: float = Field(
        default=DEFAULT_QUIET_AFTER_S,
        gt=0,
        description="A user with no event for this long counts as quiet.",
    )
    dataset_quiet_stride: int = Field(
        default=DEFAULT_QUIET_STRIDE,
        ge=1,
        description="Quiet rows are sampled every Nth cutoff, with weight N.",
    )
    calibration: Literal["sigmoid", "isotonic"] = Field(
        default=DEFAULT_CALIBRATION,
        description="Calibration on the validation slice (isotonic needs enough positives).",
    )
    train_seed: int = Field(
        default=DEFAULT_TRAIN_SEED, ge=0, description="Seed of LightGBM: same data, same model."
    )
    train_min_positives: int = Field(
        default=DEFAULT_MIN_POSITIVES,
        ge=1,
        description="Connects each of train/validation/test must hold at least.",
    )
    model_type: ModelType = Field(
        default=DEFAULT_MODEL_TYPE,
        description="What `train` and `retrain` train (`--model-type` wins): `classifier`, one "
        "probability within the horizon, or `curve`, a time-to-connect hazard model.",
    )
    retrain_window_hours: float = Field(
        default=168.0, gt=0, description="`retrain` trains on this many hours up to the last event."
    )
    dask: str | None = Field(
        default=None,
        description="Where `train` and `retrain` train (`--dask` wins): `tcp://HOST:PORT`, a "
        "Dask scheduler, or `local:N`, N worker processes started here; unset: this process.",
    )
    dask_timeout_s: float = Field(
        default=DEFAULT_DASK_TIMEOUT_S,
        gt=0,
        description="Seconds a Dask scheduler has to answer and to have a worker.",
    )
    promote_log_loss_tolerance: float = Field(
        default=DEFAULT_LOG_LOSS_TOLERANCE,
        ge=0,
        description="Relative log-loss increase a candidate may show.",
    )
    promote_brier_tolerance: float = Field(
        default=DEFAULT_BRIER_TOLERANCE,
        ge=0,
        description="Relative Brier-score increase a candidate may show.",
    )
    promote_auc_tolerance: float = Field(
        default=DEFAULT_AUC_TOLERANCE,
        ge=0,
        description="ROC AUC decrease (absolute) a candidate may show.",
    )
    live_min_settled: int = Field(
        default=DEFAULT_LIVE_MIN_SETTLED,
        ge=0,
        description="Settled predictions per version that live evidence needs "
        "(`promote --live`, `retrain --when-degraded`).",
    )
    live_brier_tolerance: float = Field(
        default=DEFAULT_LIVE_BRIER_TOLERANCE,
        ge=0,
        description="Relative live Brier-score increase a challenger may show (`promote --live`).",
    )
    live_max_age_s: float = Field(
        default=DEFAULT_LIVE_MAX_AGE_S,
        gt=0,
        description="Live evidence older than this is stale (`retrain --when-degraded` trains).",
    )
    actor: str | None = Field(
        default=None, description="Who promotes or rolls back, for the audit tags (default: $USER)."
    )

    # -- online service ----------------------------------------------------------------------
    instance: str = Field(
        default="main",
        min_length=1,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Service instance name: its consumer group and its saved state.",
    )
    admin_token: SecretStr | None = Field(
        default=None, description="Bearer token of the admin endpoints (unset: they are off)."
    )
    leader_lease_s: float | None = Field(
        default=None,
        gt=0,
        description="Replicas: only the holder of a leader lease of this many seconds in "
        "Redis ticks and sends node commands (unset: this process always does).",
    )
    bridge: bool = Field(
        default=True, description="`serve` also bridges pub/sub into the event log."
    )
    node_boot: str = Field(
        default=DEFAULT_BOOT_SPEC, description="Boot times of the built-in simulated nodes."
    )
    min_ready: int = Field(
        default=default_of(ServiceConfig, "min_ready"), ge=0, description="Warm nodes always kept."
    )
    scale_up_threshold: float = Field(
        default=default_of(ServiceConfig, "scale_up_threshold"),
        ge=0,
        le=1,
        description="Request nodes when the shortfall reaches this.",
    )
    scale_down_threshold: float = Field(
        default=default_of(ServiceConfig, "scale_down_threshold"),
        ge=0,
        le=1,
        description="Terminate when this much surplus would remain.",
    )
    max_idle_s: float = Field(
        default=default_of(ServiceConfig, "max_idle_s"),
        gt=0,
        description="Idle ready nodes retire after.",
    )
    target_instant_rate: float = Field(
        default=default_of(ServiceConfig, "target_instant_rate"),
        gt=0,
        lt=1,
        description="Wanted share of connects served at once.",
    )
    max_nodes: int = Field(
        default=default_of(ServiceConfig, "max_nodes"),
        ge=1,
        description="Node budget: nodes alive at most.",
    )
    lead_time_s: float | None = Field(
        default=default_of(ServiceConfig, "lead_time_s"),
        gt=0,
        description="Time warm nodes must cover; unset: a tick plus the learned boot time.",
    )
    plan_moments: int | None = Field(
        default=default_of(ServiceConfig, "plan_moments"),
        ge=1,
        le=MAX_PLAN_MOMENTS,
        description="Moments up to the lead time the warm pool is planned for (1: one "
        "window; unset: one per four ticks of the lead time).",
    )
    boot_prior_s: float = Field(
        default=default_of(ServiceConfig, "boot_prior_s"),
        ge=0,
        description="Boot time assumed until nodes have booted.",
    )
    tick_interval_s: float = Field(
        default=default_of(ServiceConfig, "tick_interval_s"),
        gt=0,
        description="Seconds between decisions.",
    )
    warm_history_hours: float = Field(
        default=DEFAULT_WARM_HISTORY_S / 3600.0,
        ge=0,
        description="Event-log hours replayed into the features at start; training reads "
        "as many before its range, for the features' history only.",
    )
    model_check_s: float = Field(
        default=DEFAULT_MODEL_CHECK_S,
        gt=0,
        description="How often the service looks for a new champion.",
    )

    release_memory_s: float = Field(
        default=DEFAULT_RELEASE_MEMORY_S,
        ge=0,
        description="How often (wall seconds) the service gives the memory it freed back to "
        "the system (glibc's malloc_trim; 0: never).",
    )

    user_retention_hours: float = Field(
        default=default_of(ServiceConfig, "user_retention_s") / 3600.0,
        gt=0,
        description="Users not seen for this many hours (and not connected) are forgotten.",
    )

    # -- predictions against outcomes --------------------------------------------------------
    prediction_log_max_per_tick: int = Field(
        default=default_of(ServiceConfig, "prediction_log_max_per_tick"),
        ge=1,
        description="Predictions logged per tick and version at most (a weighted sample).",
    )
    prediction_log_keep_settled: int = Field(
        default=default_of(ServiceConfig, "prediction_log_keep_settled"),
        ge=0,
        description="Settled predictions per version held for a consumer between two takes.",
    )
    live_metrics_bucket_s: float = Field(
        default=default_of(ServiceConfig, "live_metrics_bucket_s"),
        gt=0,
        description="Live metrics are summed in time buckets this long, seconds.",
    )
    live_metrics_windows_s: Annotated[tuple[float, ...], NoDecode] = Field(
        default=default_of(ServiceConfig, "live_metrics_windows_s"),
        min_length=1,
        description="Rolling windows of the live metrics, seconds, comma-separated.",
    )
    live_log_s: float = Field(
        default=DEFAULT_LIVE_LOG_S,
        gt=0,
        description="How often the live metrics of the champion and the challenger are "
        "logged to their MLflow runs, seconds.",
    )

    @field_validator("live_metrics_windows_s", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("live_metrics_windows_s")
    @classmethod
    def _positive_windows(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not all(math.isfinite(w) and w > 0 for w in value):
            raise ValueError(f"windows must be finite numbers > 0, not {list(value)}")
        return value

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        return value.expanduser().absolute()
