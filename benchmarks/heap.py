"""The service's Python heap over time (tracemalloc). Prints one JSON object.

``benchmarks/soak.py`` watches the resident memory of ``provisioner serve``; this script
says whether what grows is Python objects. It runs the same service in process (built by
``provisioner.service_wiring.running_service``, the built-in simulated node provider, no model
unless the registry under the temporary home has one), appends the seed workload to the
event log on an accelerated clock, and every ``--every-s`` seconds collects garbage and
records the memory tracemalloc traces. At the end it lists the allocation sites that grew
most between the first sample after warm-up and the last.

Uses ``REDIS_URL`` when set, else an embedded server in a temporary folder.

    .venv/bin/python benchmarks/heap.py [--minutes 5] [--speed 120] [--every-s 30] [--json out.json]
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, and this file's name would
# hide the `service` package. Look for packages from the project instead.
if Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import asyncio
import gc
import os
import tempfile
import time
import tracemalloc
from typing import Any

import redis
import uvicorn

from benchmarks.common import emit, free_port, redis_server
from features.clock import ScaledClock
from features.eventlog import EventLog, LogKeys
from provisioner.service_wiring import running_service
from provisioner.settings import Settings
from simulation.workloads import generate


async def run(args: argparse.Namespace, home: Path, url: str) -> dict[str, Any]:
    prefix = f"heap:{os.getpid()}:"
    anchor = time.time()
    settings = Settings(
        home=home,
        speed=args.speed,
        clock_anchor=anchor,
        key_prefix=prefix,
        channel_prefix=prefix,
        bridge=True,  # the built-in node provider announces on pub/sub
    )
    clock = ScaledClock(anchor=anchor, speed=args.speed)
    client = redis.Redis.from_url(url)
    log = EventLog(client, LogKeys(prefix))
    hours = args.speed * args.minutes / 60 + 1
    events = iter(generate("seed", hours=hours, seed=1, start=clock.now()))
    samples: list[dict[str, float]] = []
    snapshots: list[tracemalloc.Snapshot] = []
    appended = 0
    try:
        async with running_service(settings, url) as running:
            config = uvicorn.Config(running.app, port=free_port(), log_level="warning")
            server = uvicorn.Server(config)
            serving = asyncio.create_task(server.serve())
            started = time.monotonic()
            end = started + args.minutes * 60
            next_sample = started + args.every_s
            pending = next(events)
            while time.monotonic() < end:
                now = clock.now()
                batch = []
                while pending.ts <= now:
                    batch.append(pending)
                    pending = next(events)
                if batch:
                    await asyncio.to_thread(log.append_batch, batch)
                    appended += len(batch)
                await asyncio.sleep(0.05)
                if time.monotonic() >= next_sample:
                    gc.collect()
                    snapshots.append(tracemalloc.take_snapshot())
                    traced, _ = tracemalloc.get_traced_memory()
                    t = round(time.monotonic() - started, 1)
                    samples.append({"t": t, "traced_mb": round(traced / 1e6, 3)})
                    print(f"{t:.0f} s: {traced / 1e6:.2f} MB traced", file=sys.stderr)
                    next_sample += args.every_s
            server.should_exit = True
            await serving
    finally:
        keys = list(client.scan_iter(f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()
    warm = [s for s in samples if s["t"] >= args.warm_fraction * args.minutes * 60]
    first = samples.index(warm[0]) if warm else 0
    growth = snapshots[-1].compare_to(snapshots[first], "lineno")[: args.top]
    span_min = (warm[-1]["t"] - warm[0]["t"]) / 60 if len(warm) > 1 else 0.0
    return {
        "benchmark": "heap",
        "minutes": args.minutes,
        "speed": args.speed,
        "events_appended": appended,
        "samples": samples,
        "warm_growth_mb_per_min": (
            round((warm[-1]["traced_mb"] - warm[0]["traced_mb"]) / span_min, 3)
            if span_min
            else None
        ),
        "top_growth": [
            {"where": str(stat.traceback[0]), "kb": round(stat.size_diff / 1024, 1)}
            for stat in growth
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--speed", type=float, default=120.0, help="clock speed-up")
    parser.add_argument("--every-s", type=float, default=30.0, help="wall seconds per sample")
    parser.add_argument("--warm-fraction", type=float, default=0.25)
    parser.add_argument("--top", type=int, default=5, help="allocation sites listed")
    parser.add_argument("--json", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    if args.every_s >= args.minutes * 60:
        parser.error("--every-s must be shorter than the run")
    tracemalloc.start()
    with tempfile.TemporaryDirectory(prefix="heap-") as tmp, redis_server() as url:
        report = asyncio.run(run(args, Path(tmp) / "home", url))
    emit(report, args.json)


if __name__ == "__main__":
    main()
