"""Admin endpoints need the bearer token; no token, password or payload reaches a log.

The log test runs the production wiring (``provisioner.service_wiring.running_service``) under
uvicorn on a real socket, against a password-protected Redis server of its own and an
MLflow tracking URI with credentials in it, sends bad events with marked payloads both
ways, calls the admin endpoint with a wrong and with the right token and makes a reload
fail; then no log record (message, arguments or traceback) may hold any of the secrets
or the payloads. The dead-letter stream is where payloads go.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import random
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import uvicorn
from fastapi.testclient import TestClient
from pydantic import SecretStr
from redis.backoff import NoBackoff
from redis.retry import Retry

from features.clock import ScaledClock
from provisioner.embedded_redis import redis_server_binary
from provisioner.service_wiring import running_service
from provisioner.settings import Settings
from service.app import create_app, token_matches
from service.redact import redact_url, scrub
from simulation.nodes.boot import UniformBoot
from simulation.nodes.fleet import NodeFleet
from tests.servers import free_port, loopback_socket
from tests.service.live_harness import SPEED, make_service

TOKEN = "adm1n-T0KEN-7f3c9e1a"


# -- the admin token -----------------------------------------------------------------------


def test_token_comparison() -> None:
    assert token_matches(TOKEN, TOKEN)
    assert not token_matches(TOKEN[:-1] + "x", TOKEN)  # same length, last char differs
    assert not token_matches("x" + TOKEN[1:], TOKEN)  # same length, first char differs
    assert not token_matches(TOKEN + "x", TOKEN)
    assert not token_matches("", TOKEN)
    assert not token_matches("Ünïcødé", TOKEN)


def test_token_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison goes through ``hmac.compare_digest`` (time independent of where the
    strings differ), whatever the route code around it does."""
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert token_matches(TOKEN, TOKEN) and not token_matches("nope", TOKEN)
    assert calls == [(TOKEN.encode(), TOKEN.encode()), (b"nope", TOKEN.encode())]


@pytest.fixture
def admin_api(redis_url: str, key_prefix: str) -> Iterator[TestClient]:
    clock = ScaledClock(anchor=time.time(), speed=SPEED)
    harness = make_service(
        redis_url, key_prefix, clock, NodeFleet(UniformBoot(10, 29), random.Random(0))
    )
    app = create_app(harness.service, admin_token=TOKEN, on_shutdown=[harness.close])
    with TestClient(app) as client:
        yield client


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Bearer wrong",
        f"Bearer {TOKEN[:-1]}X",  # the right length, the wrong content
        f"Bearer {TOKEN}x",
        f"Basic {TOKEN}",
        TOKEN,
        f"Token {TOKEN}",
    ],
)
def test_admin_endpoints_refuse_without_the_right_token(
    admin_api: TestClient, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    answer = admin_api.post("/v1/model/reload", headers=headers)
    assert answer.status_code == 401, answer.text
    assert answer.headers.get("www-authenticate") == "Bearer"
    assert TOKEN not in answer.text


def test_admin_endpoints_accept_the_token(admin_api: TestClient) -> None:
    for scheme in ("Bearer", "bearer"):
        answer = admin_api.post("/v1/model/reload", headers={"Authorization": f"{scheme} {TOKEN}"})
        assert answer.status_code == 409  # authorised; this service has no registry to reload


def test_admin_endpoints_are_off_without_a_configured_token(
    redis_url: str, key_prefix: str
) -> None:
    clock = ScaledClock(anchor=time.time(), speed=SPEED)
    harness = make_service(
        redis_url, key_prefix, clock, NodeFleet(UniformBoot(10, 29), random.Random(0))
    )
    with TestClient(create_app(harness.service, on_shutdown=[harness.close])) as client:
        for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer None"}):
            answer = client.post("/v1/model/reload", headers=headers)
            assert answer.status_code == 401 and "disabled" in answer.json()["detail"]


def test_the_schema_declares_the_bearer_scheme(admin_api: TestClient) -> None:
    schema = admin_api.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert schema["paths"]["/v1/model/reload"]["post"]["security"] == [{"HTTPBearer": []}]
    assert "security" not in schema["paths"]["/v1/predict"]["post"]


# -- redaction -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@10.0.0.5:6379/0", "redis://:***@10.0.0.5:6379/0"),
        ("rediss://app:s3cret@cache:6380", "rediss://app:***@cache:6380"),
        ("http://tok3n@nodes:8080/", "http://***@nodes:8080/"),
        ("unix:///run/redis.sock?db=0&password=s3cret", "unix:///run/redis.sock?db=0&password=***"),
        ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
        ("sqlite:////home/u/mlflow.db", "sqlite:////home/u/mlflow.db"),
    ],
)
def test_urls_are_shown_without_credentials(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_messages_are_scrubbed_of_credentials() -> None:
    text = "http://u:pw1@mlflow:5000: API request to http://u:pw1@mlflow:5000/api failed"
    assert "pw1" not in scrub(text) and scrub(text).count("http://***@mlflow:5000") == 2
    assert scrub("no urls here: a@b") == "no urls here: a@b"


# -- nothing secret in the logs ------------------------------------------------------------


REDIS_PASSWORD = "r3dis-PW-4b1d"
MLFLOW_PASSWORD = "mlfl0w-PW-c2e8"
MARKERS = ["PAYLOAD-MARK-1a", "PAYLOAD-MARK-2b", "PAYLOAD-MARK-3c", "PAYLOAD-MARK-4d"]


@pytest.fixture
def password_redis(tmp_path: Path) -> Iterator[str]:
    """A Redis server of this test that wants a password; its URL, password included."""
    port = free_port()
    process = subprocess.Popen(
        [
            str(redis_server_binary()),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--requirepass",
            REDIS_PASSWORD,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://:{REDIS_PASSWORD}@127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0))
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert process.poll() is None, "redis-server died"
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port, retry=Retry(NoBackoff(), 0)).ping()  # really protected
        yield url
    finally:
        client.close()
        process.terminate()
        process.wait(10)


@pytest.mark.integration
def test_no_secret_or_payload_is_logged(
    password_redis: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    mlflow_uri = f"http://ml-user:{MLFLOW_PASSWORD}@127.0.0.1:{free_port()}"  # nobody there
    settings = Settings(
        home=tmp_path / "home",
        redis_url=password_redis,
        mlflow_tracking_uri=mlflow_uri,
        admin_token=SecretStr(TOKEN),
        speed=SPEED,
        model_check_s=3600.0,
    )
    caplog.set_level(logging.DEBUG)
    client = redis.Redis.from_url(password_redis)
    wrong_token = "wr0ng-T0KEN-d00d"

    async def scenario() -> tuple[dict[str, object], list[str]]:
        async with running_service(settings, password_redis) as running:
            sock = loopback_socket()
            port = sock.getsockname()[1]
            server = uvicorn.Server(uvicorn.Config(running.app, log_level="debug"))
            serving = asyncio.create_task(server.serve(sockets=[sock]))
            try:
                while not server.started:
                    assert not serving.done(), "uvicorn did not start"
                    await asyncio.sleep(0.01)
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                    deadline = time.monotonic() + 15
                    while (await http.get("/readyz")).status_code != 200:
                        assert time.monotonic() < deadline, "never ready"
                        await asyncio.sleep(0.05)
                    return await _exercise(http, client, running.service.event_log.keys.stream)
            finally:
                server.should_exit = True
                await serving
                sock.close()

    async def _exercise(
        http: httpx.AsyncClient, client: redis.Redis, stream: str
    ) -> tuple[dict[str, object], list[str]]:
        one, two, three, four = MARKERS
        # Bad events both ways: through pub/sub (the bridge) and written to the stream.
        deadline = time.monotonic() + 10
        while client.publish("user:connect", f'{{"user_id": "", "note": "{one}"}}') == 0:
            assert time.monotonic() < deadline, "the bridge never subscribed"
            await asyncio.sleep(0.05)
        client.publish("node:status", f"{two} is not JSON")
        client.xadd(stream, {"channel": "user:activity", "payload": f'{{"timestamp": "{three}"}}'})
        client.xadd(stream, {"channel": four, "payload": "{}"})
        deadline = time.monotonic() + 10
        while client.xlen(f"{stream}:dead") < 4:
            assert time.monotonic() < deadline, "the bad events were not dead-lettered"
            await asyncio.sleep(0.05)
        headers = {"Authorization": f"Bearer {wrong_token}"}
        assert (await http.post("/v1/model/reload", headers=headers)).status_code == 401
        headers = {"Authorization": f"Bearer {TOKEN}"}
        reloaded = await http.post("/v1/model/reload", headers=headers)  # the store is down
        assert reloaded.status_code == 200
        model = (await http.get("/v1/model")).json()
        entries: Any = client.xrange(f"{stream}:dead")
        dead = [str(fields) for _, fields in entries]
        return model, dead

    model, dead = asyncio.run(scenario())
    client.close()

    # The failures were reported (so the test looks where secrets could have gone) ...
    assert "registry unreachable" in str(model["last_error"])
    assert any("registry unreachable" in r.getMessage() for r in caplog.records)
    # ... the payloads are in the dead-letter stream, where they belong ...
    for marker in MARKERS:
        assert any(marker in letter for letter in dead), marker
    # ... and no secret nor payload is in any log record or API answer.
    secrets = [TOKEN, wrong_token, REDIS_PASSWORD, MLFLOW_PASSWORD, *MARKERS]
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    assert len(caplog.records) > 5
    for record in caplog.records:
        text = formatter.format(record) + repr(record.args)
        leaked = [secret for secret in secrets if secret in text]
        assert not leaked, f"{leaked} in a log record: {text[:500]}"
    assert not [secret for secret in secrets if secret in repr(model)]


def test_random_payloads_are_not_logged_by_the_consumer(
    redis_url: str, redis_client: redis.Redis, key_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Many bad entries through the live shell's consumer loop: dead-lettered, not logged."""
    clock = ScaledClock(anchor=time.time(), speed=SPEED)
    fleet = NodeFleet(UniformBoot(10, 29), random.Random(1))
    harness = make_service(redis_url, key_prefix, clock, fleet)
    caplog.set_level(logging.DEBUG)
    rng = random.Random(2)
    markers = [f"MARK-{rng.getrandbits(48):012x}" for _ in range(30)]

    async def scenario() -> None:
        await harness.service.start()
        try:
            stream = harness.service.event_log.keys.stream
            for i, marker in enumerate(markers):
                payload = [f'{{"user_id": {i}, "m": "{marker}"}}', f"{marker}{{", f'["{marker}"]']
                redis_client.xadd(stream, {"channel": "user:connect", "payload": payload[i % 3]})
            deadline = time.monotonic() + 10
            while redis_client.xlen(f"{stream}:dead") < len(markers):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
        finally:
            await harness.service.stop()
            await harness.close()

    asyncio.run(scenario())
    for record in caplog.records:
        text = record.getMessage()
        assert not [m for m in markers if m in text], text[:300]
