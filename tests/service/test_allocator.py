"""Giving freed memory back to the system (service.allocator): in a real process, and the
live service's loop that does it."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

import service.live
from features.clock import ScaledClock
from service.allocator import can_release_free_memory, release_free_memory
from service.live import LiveOptions
from simulation.nodes.boot import UniformBoot
from simulation.nodes.fleet import NodeFleet
from tests.service.live_harness import SPEED, make_service, until

ROOT = Path(__file__).resolve().parents[2]

FRAGMENTED = """
import json, os
from service.allocator import release_free_memory

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

before = rss_mb()
blocks = [bytearray(4000) for _ in range(50_000)]  # 200 MB from malloc, not Python's arenas
kept = blocks[::64]  # one block in 64 stays: the heap's top cannot shrink by itself
del blocks
freed = rss_mb()
released = release_free_memory()
print(json.dumps({"before": before, "freed": freed, "released": released, "after": rss_mb()}))
"""


@pytest.mark.skipif(not can_release_free_memory(), reason="the C library is not glibc")
def test_freed_memory_goes_back_to_the_system_only_when_released() -> None:
    done = subprocess.run(
        [sys.executable, "-c", FRAGMENTED],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    rss = json.loads(done.stdout)
    assert rss["freed"] - rss["before"] > 150  # freed, but still resident
    assert rss["released"] is True
    assert rss["freed"] - rss["after"] > 150  # given back


def test_the_live_service_releases_memory_now_and_then(
    redis_url: str, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[bool] = []

    def counted() -> bool:
        released = release_free_memory()
        calls.append(released)
        return released

    monkeypatch.setattr(service.live, "release_free_memory", counted)
    clock = ScaledClock(anchor=time.time(), speed=SPEED)
    fleet = NodeFleet(UniformBoot(3, 8), random.Random(5))

    async def scenario(every_s: float) -> list[str]:
        options = LiveOptions(read_block_ms=50, release_memory_every_s=every_s)
        harness = make_service(redis_url, key_prefix, clock, fleet, options=options)
        await harness.service.start()
        try:
            names = [task.get_name() for task in harness.service._tasks]
            if every_s > 0 and can_release_free_memory():
                await until(lambda: len(calls) >= 3)
            else:
                await asyncio.sleep(0.3)
            return names
        finally:
            await harness.service.stop()
            await harness.close()

    names = asyncio.run(scenario(0.05))
    assert ("release-memory" in names) == can_release_free_memory()
    count = len(calls)
    assert asyncio.run(scenario(0.0)).count("release-memory") == 0
    assert len(calls) == count  # 0: never
