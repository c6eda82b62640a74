from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from provisioner.service_wiring import service_config
from provisioner.settings import Settings
from service.config import ServiceConfig


def test_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("PROVISIONER_HOME", "REDIS_URL", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert settings.home == tmp_path / ".provisioner"
    assert settings.redis_url is None and settings.mlflow_tracking_uri is None
    assert settings.key_prefix == "pp:" and settings.channel_prefix == ""


def test_conventional_and_prefixed_names(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PROVISIONER_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/3")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    monkeypatch.setenv("PROVISIONER_NODE_API_URL", "http://127.0.0.1:7777")
    monkeypatch.setenv("PROVISIONER_STREAM_MAX_LEN", "1000")
    settings = Settings()
    assert settings.home == tmp_path / "h"
    assert settings.redis_url == "redis://127.0.0.1:6379/3"
    assert settings.mlflow_tracking_uri == "http://127.0.0.1:5000"
    assert settings.node_api_url == "http://127.0.0.1:7777"
    assert settings.stream_max_len == 1000


def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROVISIONER_SPEED", "-2")
    with pytest.raises(ValidationError, match="speed"):
        Settings()


def test_home_is_not_the_users_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("PROVISIONER_HOME", raising=False)
    monkeypatch.setenv("HOME", "/somewhere/else")
    monkeypatch.chdir(tmp_path)
    assert Settings().home == tmp_path / ".provisioner"


def test_init_by_field_name(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, redis_url="redis://x")
    assert settings.home == tmp_path and settings.redis_url == "redis://x"


def test_live_metric_windows_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROVISIONER_LIVE_METRICS_WINDOWS_S", "600, 7200")
    monkeypatch.setenv("PROVISIONER_LIVE_LOG_S", "60")
    settings = Settings()
    assert settings.live_metrics_windows_s == (600.0, 7200.0) and settings.live_log_s == 60.0
    config = service_config(settings)
    assert config.live_metrics_windows_s == (600.0, 7200.0)
    monkeypatch.setenv("PROVISIONER_LIVE_METRICS_WINDOWS_S", "600,-1")
    with pytest.raises(ValidationError, match="live_metrics_windows_s"):
        Settings()


def test_the_live_knobs_default_to_the_engines(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "PREDICTION_LOG_MAX_PER_TICK",
        "PREDICTION_LOG_KEEP_SETTLED",
        "LIVE_METRICS_BUCKET_S",
        "LIVE_METRICS_WINDOWS_S",
    ):
        monkeypatch.delenv(f"PROVISIONER_{name}", raising=False)
    assert service_config(Settings()) == ServiceConfig()


def test_plan_moments_reach_the_engine_and_out_of_range_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert service_config(Settings()).plan_moments is None  # one per four ticks of lead
    monkeypatch.setenv("PROVISIONER_PLAN_MOMENTS", "4")
    assert service_config(Settings()).plan_moments == 4
    for bad in ("0", "33"):
        monkeypatch.setenv("PROVISIONER_PLAN_MOMENTS", bad)
        with pytest.raises(ValidationError, match="plan_moments"):
            Settings()
