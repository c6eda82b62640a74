"""Shared fixtures: real Redis, both the embedded server and the one at ``REDIS_URL``.

Every Redis test runs twice: against an embedded server this session starts (always), and
against ``REDIS_URL`` when it is set (CI sets it to the machine's server). Each test owns a
fresh key prefix, which also prefixes its pub/sub channel names, and its keys are deleted
afterwards, so tests never see each other's data on a shared server.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from provisioner.embedded_redis import EmbeddedRedis


@pytest.fixture(scope="session")
def embedded_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(tmp_path_factory.mktemp("embedded-redis")) as server:
        yield server


@pytest.fixture(params=["embedded", "external"])
def redis_url(request: pytest.FixtureRequest) -> str:
    if request.param == "external":
        url = os.environ.get("REDIS_URL")
        if not url:
            pytest.skip("REDIS_URL is not set (CI sets it): external-server variant not run")
        return url
    server: EmbeddedRedis = request.getfixturevalue("embedded_server")
    return server.url


@pytest.fixture
def key_prefix() -> str:
    return f"test:{uuid.uuid4().hex[:12]}:"


@pytest.fixture
def redis_client(redis_url: str, key_prefix: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    keys = list(client.scan_iter(f"{key_prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A fresh PROVISIONER_HOME."""
    path = tmp_path / "home"
    path.mkdir()
    return path
