"""The service's own memory gauges: what Python holds, by block and (under tracemalloc)
by byte, read at the scrape."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SCRAPE = """
import numpy as np
from prometheus_client import generate_latest
from service.telemetry import Telemetry
held = np.ones(10 * 2**20 // 8)  # 10 MiB of numpy, traced as Python's own
text = generate_latest(Telemetry().registry).decode()
for name in ("provisioner_python_traced_bytes", "provisioner_python_heap_blocks"):
    print(next(line.split()[1] for line in text.splitlines() if line.startswith(name + " ")))
"""


@pytest.mark.parametrize("frames", [None, "1"])
def test_traced_bytes_say_what_python_holds_under_tracemalloc(frames: str | None) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONTRACEMALLOC"}
    if frames is not None:
        env["PYTHONTRACEMALLOC"] = frames
    done = subprocess.run(
        [sys.executable, "-c", SCRAPE], env=env, capture_output=True, text=True, check=True
    )
    traced, blocks = (float(x) for x in done.stdout.split())
    assert blocks > 10_000
    if frames is None:
        assert traced == 0.0
    else:
        assert traced >= 10 * 2**20
