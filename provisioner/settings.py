"""The one typed Settings object. Read once, here, and passed to everything else."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    key_prefix: str = Field(default="pp:", description="Prefix of every Redis key we own.")
    channel_prefix: str = Field(
        default="", description="Prefix of the pub/sub channel names (empty: the seed's names)."
    )
    stream_max_len: int | None = Field(
        default=None, ge=1, description="Event-log retention by entry count (approximate)."
    )
    stream_max_age_s: float | None = Field(
        default=None, gt=0, description="Event-log retention by event age, seconds."
    )
    max_payload_bytes: int = Field(default=4096, ge=64, description="Larger payloads are rejected.")
    max_id_length: int = Field(default=256, ge=1, description="Longer user/node ids are rejected.")
    max_future_skew_s: float = Field(
        default=300.0, ge=0, description="Timestamps further ahead of the clock are rejected."
    )
    speed: float = Field(default=1.0, gt=0, description="Time acceleration of the shared clock.")
    clock_anchor: float | None = Field(
        default=None, description="Unix time at which the accelerated clock equals the wall."
    )
    embedded_redis_port: int = Field(
        default=0, ge=0, le=65535, description="Also listen on 127.0.0.1:PORT (0: socket only)."
    )

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        return value.expanduser().absolute()
