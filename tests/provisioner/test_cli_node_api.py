"""``provisioner node-api`` as a real process: starts, serves, stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import redis

from provisioner.embedded_redis import EmbeddedRedis
from simulation.nodes.boot import DEFAULT_BOOT_SPEC, parse_boot_time
from simulation.nodes.fleet import NodeFleet
from tests.servers import free_port

COMMAND = [sys.executable, "-c", "from provisioner.cli import main; main()"]
SEED = 99


def environment(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROVISIONER_")}
    env.pop("REDIS_URL", None)
    return env | {"COLUMNS": "200"} | values


@contextmanager
def node_api(env: dict[str, str], *args: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = free_port()
    process = subprocess.Popen(
        [*COMMAND, "node-api", "--port", str(port), "--seed", str(SEED), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, f"node-api exited: {process.communicate()[1]}"
            assert time.monotonic() < deadline, "node-api did not answer within 30 s"
            try:
                if httpx.get(f"{url}/", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        yield url, process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def stop(process: subprocess.Popen[str]) -> tuple[str, str]:
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    return out, err


def expected_first_id(boot: str = DEFAULT_BOOT_SPEC) -> str:
    return NodeFleet(parse_boot_time(boot), random.Random(SEED)).create(0.0).id


@pytest.mark.integration
def test_serves_with_its_own_embedded_redis_and_stops_on_sigterm(home: Path) -> None:
    with node_api(environment(PROVISIONER_HOME=str(home))) as (url, process):
        assert httpx.get(f"{url}/").json() == {"status": "ok", "service": "node-api"}
        created = httpx.post(f"{url}/api/nodes")
        assert created.status_code == 202
        assert created.json() == {"id": expected_first_id()}
        socket_path = EmbeddedRedis(home / "redis").socket_path
        assert socket_path.exists()  # it started the embedded server
        out, err = stop(process)
    report = json.loads(out.strip().splitlines()[-1])
    assert report["node_count"] == 1 and report["nodes_live"] == 1
    assert report["total_node_time_seconds"] > 0
    assert "Finished server process" in err
    assert not socket_path.exists()  # and stopped it on the way out


@pytest.mark.integration
def test_uses_redis_url_clock_speed_channel_prefix_and_boot_setting(
    redis_url: str, redis_client: redis.Redis, key_prefix: str, home: Path
) -> None:
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(f"{key_prefix}node:status")
    env = environment(
        REDIS_URL=redis_url,
        PROVISIONER_HOME=str(home),
        PROVISIONER_CHANNEL_PREFIX=key_prefix,
        PROVISIONER_SPEED="100",
        PROVISIONER_NODE_BOOT="fixed:20",
    )
    try:
        with node_api(env) as (url, process):
            node_id = httpx.post(f"{url}/api/nodes").json()["id"]
            assert node_id == expected_first_id("fixed:20")
            messages: list[bytes] = []
            deadline = time.monotonic() + 10
            while len(messages) < 2 and time.monotonic() < deadline:
                message = pubsub.get_message(timeout=1)
                if message is not None:
                    messages.append(message["data"])
            assert messages == [
                f'{{"node_id":"{node_id}","status":"booting"}}'.encode(),
                f'{{"node_id":"{node_id}","status":"ready"}}'.encode(),
            ]
            assert httpx.delete(f"{url}/api/nodes/{node_id}").status_code == 202
            stop(process)
    finally:
        pubsub.close()
    assert not (home / "redis").exists()  # REDIS_URL set: no embedded server


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("gamma:1", "unknown kind 'gamma'"),
        ("uniform:20:10", "0 <= A <= B"),
        ("fixed:x", "S='x' is not a number"),
    ],
)
def test_bad_boot_spec_exits_with_a_clear_message(spec: str, message: str, home: Path) -> None:
    result = subprocess.run(
        [*COMMAND, "node-api", "--boot", spec],
        env=environment(PROVISIONER_HOME=str(home)),
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--boot" in result.stderr
    assert f"boot time spec {spec!r}" in result.stderr
    assert message in result.stderr
    assert not (home / "redis").exists()  # refused before starting anything


def test_unreachable_redis_exits_with_a_clear_message(home: Path) -> None:
    url = f"redis://:s3cret-pw@127.0.0.1:{free_port()}"
    result = subprocess.run(
        [*COMMAND, "node-api", "--port", str(free_port())],
        env=environment(PROVISIONER_HOME=str(home), REDIS_URL=url),
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "cannot reach Redis" in result.stderr
    assert "redis://:***@127.0.0.1" in result.stderr  # which server, without its password
    assert "s3cret-pw" not in result.stderr + result.stdout
