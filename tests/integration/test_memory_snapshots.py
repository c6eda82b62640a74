"""``provisioner serve --memory-snapshots DIR``: each SIGUSR1 to the running process writes a
tracemalloc snapshot of it there, while it keeps serving."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
import tracemalloc
from contextlib import ExitStack
from pathlib import Path

import pytest

from features.clock import ScaledClock
from service.memory_snapshots import serial_of, snapshot_files, taken_at
from tests.integration.faults import ServeProcess, node_api, redis_process, serve_env, wait_for

pytestmark = pytest.mark.integration

SPEED = 10.0


def written(folder: Path, count: int) -> bool:
    return len(snapshot_files(folder)) == count


@pytest.mark.parametrize("traced_from_start", [True, False])
def test_each_sigusr1_writes_a_snapshot_of_the_running_service(
    tmp_path: Path, traced_from_start: bool
) -> None:
    folder = tmp_path / "snapshots"
    folder.mkdir()
    anchor = started = time.time()
    with ExitStack() as stack:
        server = stack.enter_context(redis_process(tmp_path / "redis"))
        api = stack.enter_context(node_api(server.url, ScaledClock(anchor=anchor, speed=SPEED)))
        env = serve_env(tmp_path / "home", server.url, api.url, anchor, SPEED, max_nodes=4)
        if traced_from_start:
            env["PYTHONTRACEMALLOC"] = "2"
        service = stack.enter_context(
            ServeProcess(env, tmp_path / "serve.log", ("--memory-snapshots", str(folder)))
        )
        service.wait_ready(timeout_s=180.0)  # tracing slows every import and allocation
        for taken in (1, 2):
            os.kill(service.pid, signal.SIGUSR1)
            wait_for(functools.partial(written, folder, taken), f"snapshot {taken}", 30.0)
        assert service.is_ready()  # it went on serving
        assert service.stop() == 0
    files = snapshot_files(folder)
    assert [serial_of(f) for f in files] == [1, 2]
    assert started <= taken_at(files[0]) <= taken_at(files[1]) <= time.time()
    assert not list(folder.glob("*.partial"))
    first = tracemalloc.Snapshot.load(str(files[0]))
    by_file = {stat.traceback[0].filename: stat.size for stat in first.statistics("filename")}
    engine = [size for name, size in by_file.items() if name.endswith("service/engine.py")]
    assert engine and engine[0] > 0  # the service's own state is in it
    assert first.traceback_limit == (2 if traced_from_start else 10)
    started_late = "tracemalloc started now" in service.log.read_text()
    assert started_late is not traced_from_start


def test_the_snapshot_folder_must_exist(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    done = subprocess.run(
        [sys.executable, "-m", "provisioner", "serve", "--memory-snapshots", str(missing)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=os.environ | {"COLUMNS": "200"},
    )
    said = " ".join(done.stderr.replace("│", " ").split())  # the error box's lines, joined
    assert done.returncode == 2 and "does not exist" in said, done.stderr
