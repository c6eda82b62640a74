"""Real servers for tests: loopback ports, and an ASGI app served by uvicorn on one."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import redis.asyncio
import uvicorn
from starlette.types import ASGIApp


def loopback_socket() -> socket.socket:
    """A TCP socket bound to a port of 127.0.0.1 the system chose; the caller closes it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


def free_port() -> int:
    """A loopback port nobody listened on a moment ago (for a server another process or
    library binds itself; hand over a :func:`loopback_socket` where the server takes one)."""
    with loopback_socket() as sock:
        return int(sock.getsockname()[1])


@contextmanager
def serve(app: ASGIApp, client: redis.asyncio.Redis | None = None) -> Iterator[str]:
    """Run ``app`` with uvicorn on a free port in a thread; yields its base URL."""
    sock = loopback_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))

    async def main() -> None:
        try:
            await server.serve(sockets=[sock])
        finally:
            if client is not None:
                await client.aclose()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive(), "the server thread died at start"
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)  # a loaded CI machine: the lifespan shutdown saves and closes clients
        sock.close()
        assert not thread.is_alive(), "the server did not stop"
