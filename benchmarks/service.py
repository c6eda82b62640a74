"""Online service throughput and latency. Prints one JSON object.

- ``consume``: events/s from the event log through the consumer group into the decision
  core (read, decode, apply, save state, acknowledge), one process; once per count of
  ``--tracked``: that many more users tracked (and ticked on) before the events (several
  counts: ``consume`` is a list);
- ``tick``: one scaling decision for 100k tracked users, all recently active, scored by a
  trained LightGBM model (features, model, calibration, demand, scaler, prediction log,
  the champion's health against its training reference): without the prediction log (and
  so without the health it feeds), with it (the service as it ships), and with a second
  model as a shadow challenger too; the saved engine state per user, and that of a prediction log
  holding a full day of live-metric buckets for two versions; the process's resident
  memory per user once the users are tracked, and once one engine has ticked on them too.
  ``--users`` takes several counts: each runs in a fresh process, and ``tick`` is a list;
- ``state``: online state per user, bytes;
- ``predict``: ``POST /v1/predict`` for one user over a real socket against
  ``provisioner serve``, at a fixed request rate, latency percentiles.

Uses ``REDIS_URL`` when set, else an embedded server in a temporary folder.

    .venv/bin/python benchmarks/service.py [--events 500000] [--users 100000[,300000...]]
        [--tracked 0[,1000000...]] [--rps 200] [--parts consume,tick,predict]
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
import multiprocessing
import os
import random
import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import httpx
import numpy as np
import orjson
import redis

from benchmarks.common import emit, free_port, redis_server
from features.eventlog import EventLog, LogKeys
from features.events import Event, UserEvent
from features.online import OnlineFeatures
from features.table import ACTIVITY, CONNECT, DISCONNECT, EventTable
from models.model_scorer import ModelScorer
from models.registry import LoadedModel
from service.allocator import release_free_memory
from service.config import ServiceConfig
from service.consumer import StreamConsumer
from service.engine import Engine
from service.prediction_log import PredictionLog
from service.state_store import StateStore
from simulation.workloads import DEFAULT_START, generate
from training.dataset import build_dataset
from training.train import TrainConfig, train


def trained_scorer(version: str = "1", seed: int = 3) -> ModelScorer:
    table = EventTable.from_events(generate("seed", hours=12, seed=seed))
    result = train(build_dataset(table), TrainConfig(max_trees=200))
    model = LoadedModel(
        "bench", version, result.classifier, result.split.test.X[:5], reference=result.reference
    )
    return ModelScorer(model)


class UnloggedPredictions(PredictionLog):
    """A prediction log that logs nothing: the tick as it was before the log."""

    def record(self, now: float, *args: Any, **kwargs: Any) -> None:
        return None


def bench_consume(url: str, n: int, tracked: int = 0) -> dict[str, Any]:
    """With ``tracked`` > 0, the engine first tracks that many more users (:func:`track`,
    the hour before the events) and the habits users themselves (so that none is new: a
    new user's first event would tick), and ticks five times, 10 s apart, as the service
    would have: the state it saves after every read holds its ticks' pending records."""
    client = redis.Redis.from_url(url)
    prefix = f"bench:{os.getpid()}:"
    try:
        log = EventLog(client, LogKeys(prefix))
        events: list[Event] = []
        users = max(50, n // 500)  # habits: about 700 events per user in 14 days
        for event in generate("habits", hours=24 * 14, seed=5, users=users):
            events.append(event)
            if len(events) >= n:
                break
        log.append_many(events)
        consumer = StreamConsumer(log, "bench", "c1", count=1000)
        consumer.ensure_group("0")
        store = StateStore(client, f"{prefix}state")
        if tracked:
            features = OnlineFeatures(capacity=tracked + users)
            start_ms = int(DEFAULT_START * 1000) - 3_600_000
            track(features, tracked, start_ms)
            for user in sorted({e.user_id for e in events if isinstance(e, UserEvent)}):
                features.apply(ACTIVITY, user, start_ms + 3_000_000)
            engine = Engine(trained_scorer(), ServiceConfig(), features=features)
            for k in range(5):
                engine.tick(start_ms / 1000 + 3_000 + 10 * k)
        else:
            engine = Engine(trained_scorer(), ServiceConfig())
        watermark: str | None = None
        applied = 0
        started = time.perf_counter()
        while True:
            delivery = consumer.read()
            if not len(delivery):
                break
            fresh, ids = delivery.after(watermark)
            for item in fresh:
                engine.on_event(item, item.ts)
            if ids:
                watermark = ids[-1]
            store.save(engine.to_dict(), watermark, time.time())
            consumer.ack(delivery.all_ids)
            applied += len(fresh)
        seconds = time.perf_counter() - started
        return {
            "events": applied,
            "tracked": tracked,
            "users": len(engine.features),
            "saved_state_bytes": len(orjson.dumps(engine.to_dict())),
            "seconds": round(seconds, 2),
            "events_per_s": round(applied / seconds),
        }
    finally:
        keys = list(client.scan_iter(f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()


def _tick_times(engine: Engine, now: float, repeats: int) -> list[float]:
    times = []
    for k in range(repeats):
        started = time.perf_counter()
        engine.tick(now + 10 * k)
        times.append(time.perf_counter() - started)
    return times


def _log_day_bytes(n_users: int, config: ServiceConfig) -> int:
    """The saved state of a prediction log after a day of ticks for two versions at
    ``n_users`` scored users (every live-metric bucket filled) and a horizon pending."""
    log = PredictionLog(
        max_per_tick=config.prediction_log_max_per_tick,
        bucket_s=config.live_metrics_bucket_s,
        windows_s=config.live_metrics_windows_s,
        keep_settled=0,
    )
    rows = np.arange(n_users, dtype=np.intp)
    probability = np.random.default_rng(1).beta(0.3, 6.0, n_users)
    now = 0.0
    while now < max(config.live_metrics_windows_s):
        for version in ("1", "2"):
            log.record(now, rows, probability, version, 40.0)
        log.connect(int(now) % n_users, now + 1.0)
        now += config.live_metrics_bucket_s
    for k in range(5):
        log.record(now + 10 * k, rows, probability, "1", 40.0)
        log.record(now + 10 * k, rows, probability, "2", 40.0)
    return len(orjson.dumps(log.to_dict()))


def track(features: OnlineFeatures, n_users: int, start_ms: int) -> None:
    """Track ``n_users`` users, all active within the 3000 s from ``start_ms``: four
    activity events each, and a session for one in three."""
    rng = random.Random(1)
    for i in range(n_users):
        user = f"user-{i:06d}"
        for _ in range(4):
            features.apply(ACTIVITY, user, start_ms + rng.randint(0, 3_000_000))
        if i % 3 == 0:
            features.apply(CONNECT, user, start_ms + 1_000_000)
            features.apply(DISCONNECT, user, start_ms + 1_500_000)


def rss_bytes() -> int:
    """This process's resident memory (Linux /proc)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def bench_tick(n_users: int, repeats: int = 9) -> dict[str, Any]:
    champion, challenger = trained_scorer("1", 3), trained_scorer("2", 4)
    config = ServiceConfig(max_nodes=500)
    start_ms = 1_732_492_800_000
    now = start_ms / 1000 + 3_000
    gc.collect()
    release_free_memory()
    before = rss_bytes()
    features = OnlineFeatures(capacity=n_users)
    track(features, n_users, start_ms)
    tracked = rss_bytes()
    # the same features for every variant: each tick reads them at its own time only
    logged = Engine(champion, config, features=features)
    started = time.perf_counter()
    logged.tick(now - 10)  # the first tick, not timed below: one engine as the service runs
    first_tick = time.perf_counter() - started
    with_engine = rss_bytes()
    unlogged = Engine(champion, config, features=features)
    unlogged.predictions = UnloggedPredictions(
        max_per_tick=1, bucket_s=60.0, windows_s=(60.0,), keep_settled=0
    )
    shadowed = Engine(champion, config, features=features, shadow=challenger)
    # interleaved, so that other work on the machine weighs on each variant alike
    times: dict[str, list[float]] = {"unlogged": [], "logged": [], "shadow": []}
    for k in range(repeats):
        at = now + 10 * k
        for name, engine in (("unlogged", unlogged), ("logged", logged), ("shadow", shadowed)):
            times[name] += _tick_times(engine, at, 1)
    median = {name: 1000 * float(np.median(t)) for name, t in times.items()}
    source = logged.last_scores
    state = len(orjson.dumps(shadowed.to_dict()))
    log_state = len(orjson.dumps(shadowed.predictions.to_dict()))
    return {
        "users": n_users,
        "scored": len(source),
        "from_model": int(np.count_nonzero(source.from_model)),
        "tick_ms_median": round(median["logged"], 1),
        "tick_ms_max": round(1000 * max(times["logged"]), 1),
        "tick_ms_median_without_prediction_log": round(median["unlogged"], 1),
        "tick_ms_median_with_shadow_challenger": round(median["shadow"], 1),
        "tick_ms_max_with_shadow_challenger": round(1000 * max(times["shadow"]), 1),
        "prediction_log_and_shadow_overhead": round(median["shadow"] / median["unlogged"] - 1, 3),
        "first_tick_ms": round(1000 * first_tick, 1),
        "state_bytes_per_user": round(features.bytes_per_user(), 1),
        "rss_bytes_per_user": round((tracked - before) / n_users, 1),
        "rss_bytes_per_user_with_engine": round((with_engine - before) / n_users, 1),
        "saved_state_bytes_per_user": round(state / n_users, 1),
        "saved_prediction_log_bytes_per_user": round(log_state / n_users, 1),
        "saved_prediction_log_day_bytes_per_user": round(
            _log_day_bytes(n_users, config) / n_users, 1
        ),
    }


async def load(port: int, rps: int, seconds: float, connections: int = 16) -> list[float]:
    """Open-loop load at ``rps``: each request is sent at its scheduled time on a free
    keep-alive connection; latency counts from the scheduled time (so a backlog shows).

    A bare HTTP/1.1 client over asyncio streams, so that the load generator costs far less
    CPU than the server it measures (both share this machine's cores)."""
    latencies: list[float] = []
    idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(await asyncio.open_connection("127.0.0.1", port))

    async def one(user: str, scheduled: float) -> None:
        reader, writer = await idle.get()
        body = b'{"user_ids":["' + user.encode() + b'"]}'
        writer.write(
            b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"answer: {head[:60]!r}")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await reader.readexactly(length)
        latencies.append(time.perf_counter() - scheduled)
        idle.put_nowait((reader, writer))

    tasks = []
    begin = time.perf_counter()
    for i in range(int(rps * seconds)):
        scheduled = begin + i / rps
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(f"user-{i % 50}", scheduled)))
    await asyncio.gather(*tasks)
    while not idle.empty():
        _, writer = idle.get_nowait()
        writer.close()
    return latencies


def bench_predict(rps: int, seconds: float) -> dict[str, Any]:
    port = free_port()
    with tempfile.TemporaryDirectory() as home:
        env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
        env["PROVISIONER_HOME"] = home
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "provisioner",
                "serve",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{url}/readyz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("provisioner serve did not become ready")
                time.sleep(0.2)
            asyncio.run(load(port, rps, 2.0))  # warm up
            latencies = np.array(asyncio.run(load(port, rps, seconds))) * 1000
        finally:
            server.terminate()
            server.wait(30)
    return {
        "rps": rps,
        "requests": len(latencies),
        "p50_ms": round(float(np.percentile(latencies, 50)), 2),
        "p99_ms": round(float(np.percentile(latencies, 99)), 2),
        "max_ms": round(float(latencies.max()), 2),
    }


def counts(text: str) -> list[int]:
    """User counts from ``--users`` or ``--tracked``: whole numbers, comma-separated."""
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not whole numbers, comma-separated: {text!r}") from None
    if any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"a user count is 0 or more: {text!r}")
    return values


def in_own_process(function: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """``function(*args)`` in a fresh process: its resident memory starts from nothing of
    an earlier run."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument(
        "--users",
        type=counts,
        default=[100_000],
        help="users tracked in the tick part, comma-separated: one run each, in its own process",
    )
    parser.add_argument(
        "--tracked",
        type=counts,
        default=[0],
        help="users tracked before the consume part's events, comma-separated: one run each",
    )
    parser.add_argument("--rps", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--json", type=Path, help="also write the JSON here")
    parser.add_argument(
        "--parts", default="consume,tick,predict", help="which parts to run, comma-separated"
    )
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    result: dict[str, Any] = {"benchmark": "service"}
    if "consume" in parts:
        with redis_server() as url:
            consumed = [bench_consume(url, args.events, tracked) for tracked in args.tracked]
        result["consume"] = consumed[0] if len(consumed) == 1 else consumed
    if "tick" in parts:
        ticks = [in_own_process(bench_tick, users) for users in args.users]
        result["tick"] = ticks[0] if len(ticks) == 1 else ticks
    if "predict" in parts:
        result["predict"] = bench_predict(args.rps, args.seconds)
    emit(result, args.json)


if __name__ == "__main__":
    main()
