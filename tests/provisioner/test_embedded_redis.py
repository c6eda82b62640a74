from __future__ import annotations

from pathlib import Path

import pytest
import redis

from provisioner.embedded_redis import EmbeddedRedis, EmbeddedRedisError
from tests.servers import free_port, loopback_socket

pytestmark = pytest.mark.integration


def test_starts_on_demand_and_stops_cleanly(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis")
    assert not server.is_running()
    with server:
        assert server.owned and server.is_running()
        client = redis.Redis.from_url(server.url)
        assert client.ping()
        client.close()
    assert not server.is_running()
    assert not server.socket_path.exists()


def test_data_persists_across_restarts(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path / "redis") as server:
        client = redis.Redis.from_url(server.url)
        client.xadd("s", {"k": "v"})
        client.close()
    with EmbeddedRedis(tmp_path / "redis") as server:
        client = redis.Redis.from_url(server.url)
        assert client.xlen("s") == 1
        client.close()


def test_a_second_user_shares_the_running_server(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path / "redis") as first:
        second = EmbeddedRedis(tmp_path / "redis")
        with second:
            assert not second.owned  # found running: used, not owned
        assert first.is_running()  # the second one's exit did not stop it


def test_long_home_paths_get_a_short_socket(tmp_path: Path) -> None:
    deep = tmp_path / ("x" * 60) / ("y" * 60) / "redis"
    with EmbeddedRedis(deep) as server:
        assert len(str(server.socket_path)) <= 100
        assert redis.Redis.from_url(server.url).ping()


def test_tcp_port_when_asked(tmp_path: Path) -> None:
    port = free_port()
    with EmbeddedRedis(tmp_path / "redis", port=port):
        assert redis.Redis(host="127.0.0.1", port=port).ping()


def test_a_server_that_cannot_start_is_reported(tmp_path: Path) -> None:
    with socket_taken() as port, pytest.raises(EmbeddedRedisError, match="exited at start"):
        EmbeddedRedis(tmp_path / "redis", port=port).start()


class socket_taken:  # noqa: N801 - reads as a context manager
    def __enter__(self) -> int:
        self.sock = loopback_socket()
        self.sock.listen()
        return int(self.sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self.sock.close()
