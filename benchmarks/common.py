"""What every benchmark script shares: a Redis server, a free port, the JSON it prints."""

from __future__ import annotations

import json
import os
import platform
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from provisioner.embedded_redis import EmbeddedRedis


@contextmanager
def redis_server() -> Iterator[str]:
    """``REDIS_URL`` when set, else an embedded server in a temporary folder."""
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(Path(tmp) / "redis") as server:
        yield server.url


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def emit(report: dict[str, Any], path: Path | None) -> None:
    """Print ``report`` with the machine it ran on as JSON; also write it to ``path``."""
    text = json.dumps(
        report | {"python": platform.python_version(), "cpus": os.cpu_count()}, indent=2
    )
    print(text)
    if path is not None:
        path.write_text(text + "\n")
