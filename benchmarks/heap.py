"""The service's memory over time: tracemalloc against resident memory. Prints one JSON object.

``benchmarks/soak.py`` watches the resident memory of ``provisioner serve``; this script
says whether what grows is memory Python allocates (objects, and numpy's buffers, which
tracemalloc traces too) and where. It runs the same service in process (built by
``provisioner.service_wiring.running_service``, the built-in simulated node provider),
appends a workload's events (``--workload``, ``seed`` by default) to the event log on an
accelerated clock, and every ``--every-s`` seconds collects garbage and records the memory
tracemalloc traces, the process' resident memory (``/proc/self/statm``), the Python heap's
blocks (``sys.getallocatedblocks``) and the arenas of Python's allocator that hold them,
tracemalloc's own memory and the users the engine holds.
``--no-collect`` leaves the collections to the collector's own schedule, as in ``provisioner
serve`` (a full one runs only when enough objects have lived through the younger ones);
``--census`` counts, by type, what each sample's full collection finds unreachable (objects
in reference cycles, which only a collection frees) and the numpy buffers those held.
A snapshot is taken at the first sample after warm-up (``--warm-fraction``) and at the end;
the JSON lists the allocation sites that grew most between them, by line and by traceback
(``--frames`` frames each), and the least-squares slope of each figure after warm-up, per
hour of wall time and per virtual hour.

The long soak's conditions (``soak.py --long``) are options: ``--workload churn`` starts on a
weekday morning as the soak does; ``--model`` trains a model on another seed's history and
promotes it first (``soak.prepare_model``); ``--rps`` asks ``POST /v1/predict`` at that rate
from a thread (``soak.Predicts``); ``--retention-hours`` trims the log and forgets users by
age. ``--frames 0`` runs without tracemalloc (resident memory only, at full speed).

Uses ``REDIS_URL`` when set, else an embedded server in a temporary folder.

    .venv/bin/python benchmarks/heap.py [--minutes 5] [--speed 120] [--every-s 30] [--json out.json]
    MALLOC_MMAP_THRESHOLD_=131072 .venv/bin/python benchmarks/heap.py --workload churn --model \\
        --rps 20 --retention-hours 48 --minutes 35 --speed 240 --json heap-churn.json
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
import threading
import time
import tracemalloc
from collections import Counter
from typing import Any

import httpx
import numpy as np
import redis
import uvicorn

from benchmarks.common import emit, free_port, redis_server
from benchmarks.soak import (
    DAY_PLANNED,
    DAY_PLANNED_HISTORY_HOURS,
    HISTORY_HOURS,
    Predicts,
    Stack,
    anchor_for,
    habits_start,
    least_squares,
    metric,
    prepare_model,
    wait_until,
)
from features.clock import ScaledClock
from features.eventlog import EventLog, LogKeys
from provisioner.service_wiring import running_service
from provisioner.settings import Settings
from simulation.workloads import generate, population

PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 1e6


def rss_mb() -> float:
    """This process' resident memory, MB."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_MB


def pymalloc_arenas() -> int:
    """The arenas Python's small-object allocator holds now (``sys._debugmallocstats``, which
    writes on the C stderr): an arena partly in use cannot be given back, so a heap of as
    many blocks can hold more of them."""
    with tempfile.TemporaryFile() as out:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(out.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        for line in out.read().decode().splitlines():
            if line.startswith("# arenas allocated current"):
                return int(line.split("=")[1].replace(",", ""))
    return 0


def retention(args: argparse.Namespace) -> dict[str, Any]:
    """The settings that trim the log and forget users after ``--retention-hours``."""
    if args.retention_hours is None:
        return {}
    return {
        "stream_max_age_s": args.retention_hours * 3600.0,
        "user_retention_hours": args.retention_hours,
    }


def train_first(args: argparse.Namespace, home: Path, url: str, start: float) -> None:
    """A model trained on another seed's history before ``start``, promoted (as the soak does)."""
    hours = args.history_hours
    if hours is None:
        hours = DAY_PLANNED_HISTORY_HOURS if args.workload in DAY_PLANNED else HISTORY_HOURS
    home.mkdir(parents=True)
    stack = Stack(home, url, args.speed, anchor=start)
    steps = argparse.Namespace(seed=args.seed, history_hours=hours, habits_history_hours=hours)
    prepare_model(stack, args.workload, start, steps)


async def run(args: argparse.Namespace, home: Path, url: str, dumps: Path) -> dict[str, Any]:
    prefix = f"heap:{os.getpid()}:"
    start = habits_start(time.time()) if args.workload in DAY_PLANNED else time.time()
    if args.model:
        train_first(args, home, url, start)
    anchor = anchor_for(start, args.speed)
    stack = Stack(home, url, args.speed, anchor=anchor)
    node_api = f"http://127.0.0.1:{free_port()}" if args.node_api else None
    if node_api is not None:  # as the soak runs it: a process of its own, over HTTP
        home.mkdir(parents=True, exist_ok=True)
        env = stack.env(PROVISIONER_KEY_PREFIX=prefix, PROVISIONER_CHANNEL_PREFIX=prefix)
        stack.start("node-api", "node-api", "--port", node_api.rsplit(":", 1)[1], env=env)
        wait_until("the node API", lambda: httpx.get(f"{node_api}/").status_code == 200, stack)
    settings = Settings(
        node_api_url=node_api,
        home=home,
        speed=args.speed,
        clock_anchor=anchor,
        key_prefix=prefix,
        channel_prefix=prefix,
        bridge=True,  # the built-in node provider announces on pub/sub
        max_nodes=500,  # as the soak: the habits peak holds more than the default 50
        **retention(args),
    )
    clock = ScaledClock(anchor=anchor, speed=args.speed)
    client = redis.Redis.from_url(url)
    log = EventLog(client, LogKeys(prefix))
    ids = [u.user_id for u in population(args.workload, seed=args.seed, users=args.users)]
    tracing = args.frames > 0
    warm_s = args.warm_fraction * args.minutes * 60
    samples: list[dict[str, float]] = []
    census: Counter[str] | None = Counter() if args.census else None
    appended = 0
    port = free_port()
    predicts = Predicts(f"http://127.0.0.1:{port}", ids, args.rps)
    try:
        async with running_service(settings, url) as running:
            config = uvicorn.Config(running.app, port=port, log_level="warning")
            server = uvicorn.Server(config)
            serving = asyncio.create_task(server.serve())
            while not server.started:
                await asyncio.sleep(0.05)
            requester = threading.Thread(target=predicts.run, name="predicts")
            if args.rps > 0:
                requester.start()
            http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10.0)
            started = time.monotonic()
            # from now on the clock: the service's start-up took some of it
            hours = args.speed * args.minutes / 60 + 1
            events = iter(
                generate(
                    args.workload, hours=hours, seed=args.seed, start=clock.now(), users=args.users
                )
            )
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
                    text = (await http.get("/metrics")).text
                    t = round(time.monotonic() - started, 1)
                    samples.append(
                        record(t, args.speed, text, appended, collect=args.collect, census=census)
                    )
                    if tracing and t >= warm_s and not (dumps / "warm").exists():
                        take_snapshot(dumps / "warm")
                    next_sample += args.every_s
            predicts.stop.set()
            if requester.is_alive():
                requester.join(30)
            await http.aclose()
            if tracing:
                gc.collect()
                take_snapshot(dumps / "end")
            server.should_exit = True
            await serving
    finally:
        predicts.stop.set()
        for child in stack.children:
            child.stop()
        keys = list(client.scan_iter(f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()
    warm = [s for s in samples if s["t"] >= warm_s]
    return {
        "benchmark": "heap",
        "workload": args.workload,
        "model": args.model,
        "rps": args.rps,
        "node_api": args.node_api,
        "retention_hours": args.retention_hours,
        "minutes": args.minutes,
        "speed": args.speed,
        "frames": args.frames,
        "collect": args.collect,
        "garbage_by_type": None if census is None else dict(census.most_common(args.top * 4)),
        "malloc_env": {k: v for k, v in sorted(os.environ.items()) if k.startswith("MALLOC_")},
        "events_appended": appended,
        "predict": predicts.summary(),
        "samples": samples,
        "warm_from_s": warm[0]["t"] if warm else None,
        "warm_trends": {
            name: trend(warm, name, args.speed)
            for name in (
                "rss_mb",
                "traced_mb",
                "tracemalloc_mb",
                "heap_blocks",
                "pymalloc_arenas",
                "users_tracked",
                "gc_full_collections",
                "garbage_numpy_mb",
            )
            if warm and name in warm[0]
        },
        **(growth(dumps, args.top) if tracing and (dumps / "warm").exists() else {}),
    }


def collect_garbage(census: Counter[str] | None) -> dict[str, float]:
    """A full garbage collection; with a ``census``, what it found unreachable (objects in
    reference cycles), counted by type into it, and the numpy buffers those held."""
    if census is None:
        gc.collect()
        return {}
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        found = list(gc.garbage)
        gc.garbage.clear()
    finally:
        gc.set_debug(0)
    census.update(type(o).__qualname__ for o in found)
    # numpy arrays are not tracked by the collector: they are the referents of what it found.
    arrays = {
        id(a): a
        for o in found
        for a in gc.get_referents(o)
        if isinstance(a, np.ndarray) and a.base is None
    }
    held = sum(a.nbytes for a in arrays.values())
    counted = {"garbage_objects": len(found), "garbage_numpy_mb": round(held / 1e6, 3)}
    del found, arrays
    gc.collect()  # the debug flag kept them alive: now they go
    return counted


def record(
    t: float, speed: float, metrics: str, events: int, *, collect: bool, census: Counter[str] | None
) -> dict[str, float]:
    """One sample, after a full garbage collection unless not ``collect`` (the service then
    holds what the collector's own schedule has not freed yet); printed on stderr too."""
    found = collect_garbage(census) if collect else {}
    full = gc.get_stats()[2]
    sample = {
        "t": t,
        "virtual_h": round(t * speed / 3600, 2),
        **found,
        "gc_full_collections": full["collections"],
        "gc_full_collected": full["collected"],
        "rss_mb": round(rss_mb(), 3),
        "heap_blocks": sys.getallocatedblocks(),
        "pymalloc_arenas": pymalloc_arenas(),
        "users_tracked": metric(metrics, "provisioner_users_tracked"),
        "forgotten": metric(metrics, "provisioner_users_forgotten"),
        "events": events,
    }
    if tracemalloc.is_tracing():
        sample["traced_mb"] = round(tracemalloc.get_traced_memory()[0] / 1e6, 3)
        sample["tracemalloc_mb"] = round(tracemalloc.get_tracemalloc_memory() / 1e6, 3)
    print(
        f"{t:.0f} s ({sample['virtual_h']:.0f} h): RSS {sample['rss_mb']:.1f} MB, "
        f"{sample.get('traced_mb', 0):.2f} MB traced, {sample['users_tracked']:.0f} users held",
        file=sys.stderr,
    )
    return sample


def take_snapshot(path: Path) -> None:
    """A snapshot to a file: held in memory it would weigh on the resident memory measured."""
    tracemalloc.take_snapshot().dump(str(path))


def trend(samples: list[dict[str, float]], name: str, speed: float) -> dict[str, float | None]:
    """Least-squares slope of ``name`` over wall hours with its standard error, and per
    virtual hour."""
    points = [(s["t"] / 3600, s[name]) for s in samples]
    if len(points) < 3:
        return {"slope_per_h": None, "stderr_per_h": None, "slope_per_virtual_h": None}
    b, mean, se = least_squares(points)
    return {
        "first": points[0][1],
        "last": points[-1][1],
        "mean": round(mean, 3),
        "slope_per_h": round(b, 4),
        "stderr_per_h": round(se, 4),
        "slope_per_virtual_h": round(b / speed, 6),
    }


def growth(dumps: Path, top: int) -> dict[str, Any]:
    """The sites that grew most from the warm snapshot to the last, by line and by traceback."""
    first = tracemalloc.Snapshot.load(str(dumps / "warm"))
    last = tracemalloc.Snapshot.load(str(dumps / "end"))

    def site(stat: tracemalloc.StatisticDiff, frames: int) -> dict[str, Any]:
        return {
            "kb": round(stat.size_diff / 1024, 1),
            "count": stat.count_diff,
            "total_kb": round(stat.size / 1024, 1),
            "where": [str(frame) for frame in stat.traceback[:frames]],
        }

    return {
        "top_growth": [site(s, 1) for s in last.compare_to(first, "lineno")[:top]],
        "top_growth_traceback": [
            site(s, len(s.traceback)) for s in last.compare_to(first, "traceback")[:top]
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--speed", type=float, default=120.0, help="clock speed-up")
    parser.add_argument("--every-s", type=float, default=30.0, help="wall seconds per sample")
    parser.add_argument("--warm-fraction", type=float, default=0.25)
    parser.add_argument("--top", type=int, default=5, help="allocation sites listed")
    parser.add_argument("--workload", default="seed", help="seed, habits, shifts or churn")
    parser.add_argument("--users", type=int, help="population (unset: the workload's own)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--model",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="train a model on another seed's history and promote it first, as the soak does",
    )
    parser.add_argument(
        "--history-hours",
        type=float,
        help="training history (unset: the soak's for the workload)",
    )
    parser.add_argument(
        "--rps", type=float, default=0.0, help="predict requests per second (0: none)"
    )
    parser.add_argument(
        "--retention-hours",
        type=float,
        help="trim the log and forget users after this many hours (unset: the service's own)",
    )
    parser.add_argument(
        "--node-api",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="the nodes from `provisioner node-api` in a process of its own, over HTTP, as in "
        "the soak (default: the built-in simulated provider, in process)",
    )
    parser.add_argument(
        "--frames", type=int, default=10, help="tracemalloc frames per trace (0: no tracing)"
    )
    parser.add_argument(
        "--collect",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="a full garbage collection before each sample (--no-collect: only the "
        "collector's own, as in `provisioner serve`)",
    )
    parser.add_argument(
        "--census",
        action="store_true",
        help="count what each sample's collection finds unreachable, by type, and the numpy "
        "buffers it held",
    )
    parser.add_argument("--json", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    if args.every_s >= args.minutes * 60:
        parser.error("--every-s must be shorter than the run")
    if args.census and not args.collect:
        parser.error("--census counts what a collection finds: not with --no-collect")
    if args.frames > 0:
        tracemalloc.start(args.frames)
    with tempfile.TemporaryDirectory(prefix="heap-") as tmp, redis_server() as url:
        report = asyncio.run(run(args, Path(tmp) / "home", url, Path(tmp)))
    emit(report, args.json)


if __name__ == "__main__":
    main()
