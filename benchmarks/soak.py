"""Soak: the live stack on loopback for a long while, per workload. Prints one JSON object.

For each workload (``seed``, then ``habits``), in a fresh temporary home with its own
embedded Redis: a model is trained on a day of history of the same workload under another
seed and promoted to ``champion`` (``--no-model``: the heuristic serves), then
``provisioner serve`` (which also bridges pub/sub into the event log),
``provisioner node-api`` and ``provisioner simulate --realtime`` run as processes on one
accelerated clock (``PROVISIONER_SPEED``, ``PROVISIONER_CLOCK_ANCHOR``), while a bounded
request loop asks ``POST /v1/predict`` at a fixed rate. Every ``--sample-s`` seconds it
records the events consumed (``/metrics``), the service process' CPU and resident memory
(``/proc``), the stream length and the pool. Then the simulator stops, the service
drains the log, and the end state is checked:

- **lost events**: entries of the event log neither applied nor dead-lettered
  (``stream length - consumed - dead letters``), and events the simulator published that
  never reached the log; the service's watermark must be the log's last entry;
- **leaked nodes**: nodes alive at the node API that the service's pool does not hold
  (and, the other way, nodes the pool holds that the node API does not have).

Memory growth is the slope of a least-squares line through the RSS samples once warm
(after ``--warm-fraction`` of the run), in MB per minute.

``--long`` is the months-in-hours run: two hours of wall time at x120 (ten virtual days) on
the ``churn`` workload (habits people who arrive and leave for good, 300 present), the model
serving, the event log trimmed by age (``--retention-hours``, 48) and users forgotten after
as long (``PROVISIONER_USER_RETENTION_HOURS``). Per 10 minutes (``--window-min``) it
reports the service's resident memory, its Python heap (allocator blocks), the saved
state's bytes, Redis' ``used_memory``, the CPU per event and the mean scoring time of a
tick, and over the second hour each figure's least-squares slope with its standard error
(per hour, and as a share of the figure's level), and each figure's change from one
virtual week earlier, window against window (the week's cycle of traffic cancels out); every
sample is in the JSON too, and ``--refit`` makes the fits again from them without a run. It
also reports what reconcile corrected (``reconciled``). With the log trimmed, events are
counted by a pub/sub listener of the soak's own and by the log's ``appended`` counter
instead of by reading the stream. ``--trace-malloc N`` runs the service under tracemalloc
and samples what it traces; ``--snapshot-min M`` has it write a snapshot every M minutes
(``serve --memory-snapshots``) and reports the lines of code that hold more memory a
virtual week later (``snapshot_growth``).

    .venv/bin/python benchmarks/soak.py [--minutes 10] [--speed 60] [--habits-speed 240]
        [--habits-users 300] [--rps 20] [--json soak.json]
    .venv/bin/python benchmarks/soak.py --long [--minutes 120] --json soak-long.json
    .venv/bin/python benchmarks/soak.py --refit soak-long.json [--json soak-long.json]
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, and this file's name would
# hide the `service` package. Look for packages from the project instead.
if Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import bisect
import itertools
import json
import math
import os
import platform
import random
import statistics
import subprocess
import tempfile
import threading
import time
import tracemalloc
from collections import Counter
from dataclasses import dataclass, field
from typing import IO, Any, Final

import httpx
import redis
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.common import emit, free_port
from features.eventlog import EventLog, LogKeys
from provisioner.demo_processes import terminate
from provisioner.embedded_redis import EmbeddedRedis
from service.memory_snapshots import SNAPSHOT_SIGNAL, snapshot_files, taken_at
from simulation.workloads import population

PREFIX = "soak:"
DAY_PLANNED = ("habits", "churn")
"""Workloads that follow the time of day: they start on a weekday morning."""
HISTORY_HOURS: Final = 24.0
"""Training history before the run, hours (workloads not in ``DAY_PLANNED``)."""
DAY_PLANNED_HISTORY_HOURS: Final = 72.0
"""Training history of a workload in ``DAY_PLANNED`` (a day of weekend holds too few connects)."""
LONG_DEFAULTS: dict[str, Any] = {
    "workloads": "churn",
    "minutes": 120.0,
    "habits_speed": 120.0,
    "sample_s": 20.0,
    "series_points": 24,
}
"""What ``--long`` sets, unless given on the command line."""
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log: IO[bytes]
    path: Path

    def stop(self, timeout_s: float = 30.0) -> str:
        """SIGTERM, wait, SIGKILL if needed; the last JSON line it printed, if any."""
        terminate(self.process, timeout_s)
        self.log.close()
        lines = self.path.read_text(errors="replace").splitlines()
        return next((line for line in reversed(lines) if line.startswith("{")), "")


@dataclass
class Stack:
    home: Path
    redis_url: str
    speed: float
    anchor: float
    """Unix time at which the shared clock equals the wall (see ``start_clock``)."""
    extra: dict[str, str] = field(default_factory=dict)
    """Settings of every process beyond the soak's own."""
    children: list[Child] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PROVISIONER_")}
        env.pop("MLFLOW_TRACKING_URI", None)
        return env | {
            "REDIS_URL": self.redis_url,
            "PROVISIONER_HOME": str(self.home),
            "PROVISIONER_KEY_PREFIX": PREFIX,
            "PROVISIONER_CHANNEL_PREFIX": PREFIX,
            "PROVISIONER_SPEED": repr(self.speed),
            "PROVISIONER_CLOCK_ANCHOR": repr(self.anchor),
            "PROVISIONER_INSTANCE": "soak",
            # the habits peak holds more connected users than the default budget of 50
            "PROVISIONER_MAX_NODES": "500",
            "COLUMNS": "200",
            **self.extra,
            **extra,
        }

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> Child:
        path = self.home / f"{name}.log"
        log = path.open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "provisioner", *args],
            env=env if env is not None else self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        child = Child(name, process, log, path)
        self.children.append(child)
        return child

    def check_alive(self) -> None:
        for child in self.children:
            if child.process.poll() is not None:
                tail = child.path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{child.name} exited ({child.process.returncode}):\n{tail}")


def wait_until(what: str, probe: Any, stack: Stack, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if probe():
                return
        except httpx.HTTPError:
            pass
        stack.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not up after {timeout_s:.0f} s")
        time.sleep(0.2)


# -- process sampling ----------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


REGIONS: Final = ("brk_heap_mb", "anon_mb", "file_mb")
"""Where a process's resident memory lies (:func:`resident_by_region`)."""


def resident_by_region(pid: int) -> dict[str, float]:
    """Resident MB of a process by kind of mapping (Linux ``/proc/PID/smaps``): the main
    allocator heap (``[heap]``, grown by brk), anonymous mappings (other allocator arenas,
    blocks mapped on their own, native libraries' buffers, thread stacks) and file-backed
    ones (code, shared libraries); whichever grows says where to look."""
    totals = dict.fromkeys(REGIONS, 0.0)
    region = "anon_mb"
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split()
        if not head:
            continue
        if "-" in head[0] and not head[0].endswith(":"):  # a mapping's first line
            name = head[5] if len(head) > 5 else ""
            region = "anon_mb"
            if name == "[heap]":
                region = "brk_heap_mb"
            elif name and not name.startswith("["):
                region = "file_mb"
        elif head[0] == "Rss:":
            totals[region] += int(head[1]) / 1024
    return totals


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def labelled(text: str, name: str, label: str) -> dict[str, float]:
    """A counter's value per value of one label, from ``/metrics`` text."""
    return {
        sample.labels[label]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and label in sample.labels
    }


@dataclass
class Sample:
    t: float
    consumed: float
    dead: float
    cpu_s: float
    rss_mb: float
    stream: int
    nodes_live: int
    ready: int
    heap_blocks: float = 0.0
    state_bytes: int = 0
    redis_used_mb: float = 0.0
    scoring_s: float = 0.0
    """Sum of the ticks' scoring times so far (``provisioner_scoring_seconds_sum``)."""
    ticks: float = 0.0
    users_tracked: float = 0.0
    forgotten: float = 0.0
    traced_mb: float = 0.0
    """What tracemalloc traces in the service (0 without ``--trace-malloc``)."""
    brk_heap_mb: float = 0.0
    anon_mb: float = 0.0
    file_mb: float = 0.0
    """The resident memory by region (:func:`resident_by_region`)."""


@dataclass
class PubSubTally:
    """Messages seen on the soak's pub/sub channels, by kind (``user`` or ``node``): what the
    bridge should have logged, counted apart from the log (which the long soak trims)."""

    url: str
    counts: Counter[str] = field(default_factory=Counter)
    stop: threading.Event = field(default_factory=threading.Event)
    ready: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> PubSubTally:
        """Listen in a thread of its own; returns once subscribed."""
        self.thread = threading.Thread(target=self.run, name="pubsub-tally")
        self.thread.start()
        self.ready.wait(10)
        return self

    def close(self) -> None:
        """Stop listening (again: nothing)."""
        self.stop.set()
        if self.thread is not None:
            self.thread.join(10)

    def run(self) -> None:
        client = redis.Redis.from_url(self.url)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        pubsub.psubscribe(f"{PREFIX}*")
        self.ready.set()
        try:
            while not self.stop.is_set():
                message = pubsub.get_message(timeout=0.5)
                if message is not None:
                    channel = message["channel"].decode()[len(PREFIX) :]
                    self.counts[channel.split(":", 1)[0]] += 1
        finally:
            pubsub.close()
            client.close()


@dataclass
class Predicts:
    """The bounded request loop: one request at a time, ``rps`` at most."""

    url: str
    user_ids: list[str]
    rps: float
    batch: int = 20
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        rng = random.Random(7)
        period = 1 / self.rps
        with httpx.Client(base_url=self.url, timeout=10.0) as http:
            next_at = time.monotonic()
            while not self.stop.is_set():
                body = {"user_ids": rng.sample(self.user_ids, min(self.batch, len(self.user_ids)))}
                started = time.perf_counter()
                try:
                    answer = http.post("/v1/predict", json=body)
                    self.statuses[answer.status_code] += 1
                    self.latencies_ms.append((time.perf_counter() - started) * 1000)
                except httpx.HTTPError:
                    self.errors += 1
                next_at += period
                self.stop.wait(max(0.0, next_at - time.monotonic()))

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)

        def pct(q: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(q * len(lat)))], 2) if lat else None

        return {
            "requests": len(lat) + self.errors,
            "rps_target": self.rps,
            "users_per_request": self.batch,
            "status": {str(k): v for k, v in sorted(self.statuses.items())},
            "errors": self.errors,
            "latency_ms": {"p50": pct(0.5), "p95": pct(0.95), "p99": pct(0.99), "max": pct(1.0)},
        }


# -- one workload --------------------------------------------------------------------------


def soak(workload: str, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    home = root / workload
    home.mkdir()
    by_day = workload in DAY_PLANNED
    users = args.habits_users if by_day else None
    speed = args.habits_speed if by_day else args.speed
    ids = [user.user_id for user in population(workload, seed=args.seed, users=users)]
    tally: PubSubTally | None = None
    with EmbeddedRedis(home / "redis") as server:
        start = habits_start(time.time()) if by_day else time.time()
        stack = Stack(home, server.url, speed, anchor=start, extra=long_env(args))
        client = redis.Redis.from_url(server.url)
        log = EventLog(client, LogKeys(PREFIX))
        state_key = f"{PREFIX}service:soak:state"
        service_port, api_port = free_port(), free_port()
        service_url = f"http://127.0.0.1:{service_port}"
        api_url = f"http://127.0.0.1:{api_port}"
        predicts = Predicts(service_url, ids, args.rps)
        if args.long:  # before any process publishes
            tally = PubSubTally(server.url).start()
        try:
            if args.model:
                prepare_model(stack, workload, start, args)
            stack.anchor = anchor_for(start, speed)
            # The node API first: a service that finds none opens its circuit breaker, and
            # asks again only after the cool-down (30 s of wall time).
            stack.start("node-api", "node-api", "--port", str(api_port))
            wait_until("the node API", lambda: httpx.get(f"{api_url}/").status_code == 200, stack)
            snapshots = home / "snapshots"
            serve_args = ["--port", str(service_port), "--log-level", "warning"]
            if args.snapshot_min:
                snapshots.mkdir()
                serve_args += ["--memory-snapshots", str(snapshots)]
            serve = stack.start(
                "serve",
                "serve",
                *serve_args,
                env=stack.env(PROVISIONER_NODE_API_URL=api_url, **trace_malloc(args)),
            )
            wait_until(
                "the service", lambda: httpx.get(f"{service_url}/readyz").status_code == 200, stack
            )
            sim_args = ["simulate", "--workload", workload, "--realtime", "--seed", str(args.seed)]
            if users is not None:
                sim_args += ["--users", str(users)]
            simulator = stack.start("simulate", *sim_args)
            requester = threading.Thread(target=predicts.run, name="predicts")
            requester.start()
            samples = run_samples(stack, serve.process.pid, service_url, log, args, state_key)
            predicts.stop.set()
            requester.join(30)
            published = json.loads(simulator.stop() or "{}")
            stack.children.remove(simulator)
            drained = drain(service_url, log, client, stack)
            time.sleep(args.settle_s)  # a few ticks: in-flight commands finish
            nodes = compare_nodes(service_url, api_url)
            if tally is not None:
                tally.close()
            final = final_counts(service_url, log, client, tally)
            efficiency = httpx.get(f"{service_url}/api/efficiency").json()
            model = httpx.get(f"{service_url}/v1/model").json()
            pool_end = httpx.get(f"{service_url}/v1/pool").json()
            serve_summary = json.loads(serve.stop() or "{}")
            stack.children.remove(serve)
        finally:
            predicts.stop.set()
            if tally is not None:
                tally.close()
            for child in reversed(stack.children):
                child.stop()
            client.close()
    if tally is None:
        user_events = sum(
            n for ch, n in final["stream_by_channel"].items() if ch.startswith("user:")
        )
    else:
        user_events = tally.counts["user"]
    final["lost_published"] = int(published.get("events") or 0) - user_events
    summary = summarize(workload, users or len(ids), speed, args, samples, published, drained)
    if args.long:
        summary["long"] = long_report(samples, args, speed)
    if args.snapshot_min:
        summary["snapshot_growth"] = growth_of(snapshots, args, speed)
    return summary | {
        "end": final,
        "nodes": nodes,
        "predict": predicts.summary(),
        "efficiency": efficiency,
        "pool_metrics": pool_end.get("metrics"),
        "model": {k: model.get(k) for k in ("source", "version", "fallback_reason", "fallbacks")},
        "service_metrics": serve_summary.get("metrics"),
    }


def prepare_model(stack: Stack, workload: str, start: float, args: argparse.Namespace) -> None:
    """History before the run (another seed, the workload's whole population: habits users
    connect a few times a day, fewer at weekends), trained on and promoted, as the service
    would find it in production; the history is not in the event log."""
    history = stack.home / "history.jsonl"
    hours = args.habits_history_hours if workload in DAY_PLANNED else args.history_hours
    begin = start - hours * 3600
    steps = [
        [
            *("simulate", "--workload", workload, "--hours", str(hours)),
            *("--seed", str(args.seed + 1000), "--start", repr(begin), "--out", str(history)),
        ],
        ["train", "--trace", str(history)],
        ["promote", "--trace", str(history)],
    ]
    for step in steps:
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "provisioner", *step],
            env=stack.env(),
            capture_output=True,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if done.returncode != 0:
            tail = done.stderr.decode(errors="replace")[-2000:]
            raise RuntimeError(f"provisioner {step[0]} failed ({done.returncode}):\n{tail}")
        print(f"{workload}: {step[0]} {time.monotonic() - started:.1f} s", file=sys.stderr)


def habits_start(now: float) -> float:
    """The last Tuesday 07:00 UTC at least three days before ``now``: the habits users'
    busy weekday hours come first, and the days before it are training history."""
    day = 86_400.0
    monday = (now // day - (time.gmtime(now).tm_wday)) * day  # this week's Monday 00:00 UTC
    start = monday + day + 7 * 3600.0
    while start > now - 3 * day:
        start -= 7 * day
    return start


def anchor_for(start: float, speed: float) -> float:
    """The clock anchor that makes the clock read ``start`` now (``ScaledClock`` reads
    ``anchor + (wall - anchor) * speed``): the run happens at ``start`` on the clock."""
    now = time.time()
    if speed == 1.0 or abs(start - now) < 1e-3:
        return now
    return (speed * now - start) / (speed - 1.0)


def run_samples(
    stack: Stack, pid: int, url: str, log: EventLog, args: argparse.Namespace, state_key: str
) -> list[Sample]:
    samples: list[Sample] = []
    started = time.monotonic()
    end = started + args.minutes * 60
    report_every = min(args.window_min, args.minutes) * 60
    reported = snapped = started
    client = log.client
    with httpx.Client(base_url=url, timeout=10.0) as http:
        while True:
            stack.check_alive()
            text = http.get("/metrics").text
            pool = http.get("/v1/pool").json()
            counts = pool["counts"]
            state: Any = client.strlen(state_key)
            memory: Any = client.info("memory")
            samples.append(
                Sample(
                    t=time.monotonic(),
                    consumed=metric(text, "provisioner_events_consumed_total"),
                    dead=metric(text, "provisioner_dead_letters_total"),
                    cpu_s=cpu_seconds(pid),
                    rss_mb=rss_mb(pid),
                    stream=log.length(),
                    nodes_live=sum(
                        counts[k] for k in ("requested", "booting", "ready", "allocated")
                    ),
                    ready=counts["ready"],
                    heap_blocks=metric(text, "provisioner_python_heap_blocks"),
                    traced_mb=metric(text, "provisioner_python_traced_bytes") / 2**20,
                    state_bytes=int(state),
                    redis_used_mb=int(memory["used_memory"]) / 2**20,
                    scoring_s=metric(text, "provisioner_scoring_seconds_sum"),
                    ticks=metric(text, "provisioner_scoring_seconds_count"),
                    users_tracked=metric(text, "provisioner_users_tracked"),
                    forgotten=metric(text, "provisioner_users_forgotten"),
                    **resident_by_region(pid),
                )
            )
            last = samples[-1]
            if last.t - reported >= report_every:
                reported = last.t
                print(
                    f"{(last.t - started) / 60:.1f} of {args.minutes:g} min: "
                    f"RSS {last.rss_mb:.1f} MB, {last.consumed:.0f} events, "
                    f"{last.users_tracked:.0f} users held, "
                    f"{last.nodes_live} nodes",
                    file=sys.stderr,
                )
            if args.snapshot_min and last.t - snapped >= args.snapshot_min * 60:
                snapped = last.t
                os.kill(pid, SNAPSHOT_SIGNAL)  # serve writes it, off its event loop
            if time.monotonic() >= end:
                return samples
            time.sleep(min(args.sample_s, max(0.0, end - time.monotonic())))


def drain(url: str, log: EventLog, client: redis.Redis, stack: Stack) -> dict[str, Any]:
    """Wait until the service has applied the whole log; how long it took."""
    started = time.monotonic()
    last: Any = None
    while time.monotonic() - started < 60:
        stack.check_alive()
        entries: Any = client.xrevrange(log.keys.stream, count=1)
        last = entries[0][0].decode() if entries else None
        if httpx.get(f"{url}/readyz").json().get("watermark") == last:
            break
        time.sleep(0.2)
    return {"drain_s": round(time.monotonic() - started, 2), "last_entry": last}


def final_counts(
    url: str, log: EventLog, client: redis.Redis, tally: PubSubTally | None = None
) -> dict[str, Any]:
    """What was logged against what was applied. Without a ``tally`` the stream is read
    whole; with one (the log is trimmed) the log's ``appended`` counter stands for the
    entries and the tally for what the bridge received."""
    text = httpx.get(f"{url}/metrics").text
    consumed = int(metric(text, "provisioner_events_consumed_total"))
    dead = int(metric(text, "provisioner_dead_letters_total"))
    length = log.length()
    entries: Any = client.xrevrange(log.keys.stream, count=1)
    last = entries[0][0].decode() if entries else None
    watermark = httpx.get(f"{url}/readyz").json().get("watermark")
    counts: dict[str, Any] = {
        "stream_entries": length,
        "consumed": consumed,
        "dead_letters": dead,
        "dead_letter_stream": int(client.xlen(log.keys.dead)),
        "watermark_is_last_entry": watermark == last,
        # what reconcile corrected (service.reconcile): with the clock sped up, its 30 s
        # grace and 60 s request timeout are a fraction of a wall second
        "reconciled": {
            action: int(n)
            for action, n in labelled(text, "provisioner_reconciled_total", "action").items()
        },
    }
    if tally is not None:
        appended = log.stats().get("appended", 0)
        return counts | {
            "appended": appended,
            "published_seen": dict(sorted(tally.counts.items())),
            "lost_on_the_way": sum(tally.counts.values()) - appended,
            "lost_in_log": appended - consumed - dead,
        }
    per_channel: Counter[str] = Counter()
    for batch in log.read():
        for event in batch.events:
            per_channel[event.channel.value] += 1
    return counts | {
        "stream_by_channel": dict(sorted(per_channel.items())),
        "lost_in_log": length - consumed - dead,
    }


def compare_nodes(service_url: str, api_url: str, timeout_s: float = 30.0) -> dict[str, Any]:
    """Nodes alive at the node API vs nodes the service holds, once they agree (or not)."""
    deadline = time.monotonic() + timeout_s
    while True:
        at_api = {
            n["id"] for n in httpx.get(f"{api_url}/api/nodes").json() if n["status"] != "terminated"
        }
        pool = httpx.get(f"{service_url}/v1/pool").json()
        held = {n["node_id"] for n in pool["nodes"] if n["node_id"] and n["state"] != "gone"}
        terminating = {n["node_id"] for n in pool["nodes"] if n["state"] == "terminating"}
        leaked = at_api - held
        phantom = held - at_api - terminating
        if (not leaked and not phantom) or time.monotonic() > deadline:
            return {
                "alive_at_node_api": len(at_api),
                "held_by_service": len(held),
                "leaked": sorted(leaked),
                "phantom": sorted(phantom),
                "counts": pool["counts"],
            }
        time.sleep(0.5)


def summarize(
    workload: str,
    users: int,
    speed: float,
    args: argparse.Namespace,
    samples: list[Sample],
    published: dict[str, Any],
    drained: dict[str, Any],
) -> dict[str, Any]:
    first, last = samples[0], samples[-1]
    wall_s = last.t - first.t
    rates = [(b.consumed - a.consumed) / (b.t - a.t) for a, b in itertools.pairwise(samples)]
    cpu = [100 * (b.cpu_s - a.cpu_s) / (b.t - a.t) for a, b in itertools.pairwise(samples)]
    warm = [s for s in samples if s.t - first.t >= args.warm_fraction * wall_s]
    return {
        "workload": workload,
        "users": users,
        "wall_s": round(wall_s, 1),
        "speed": speed,
        "virtual_hours": round(wall_s * speed / 3600, 2),
        "malloc_env": {k: v for k, v in sorted(os.environ.items()) if k.startswith("MALLOC_")},
        "samples": len(samples),
        "events_per_s": {
            "mean": round((last.consumed - first.consumed) / wall_s, 1) if wall_s else None,
            "p50": round(statistics.median(rates), 1) if rates else None,
            "max": round(max(rates), 1) if rates else None,
        },
        "cpu_percent": {
            "mean": round(statistics.fmean(cpu), 1) if cpu else None,
            "max": round(max(cpu), 1) if cpu else None,
        },
        "rss_mb": {
            "first": round(first.rss_mb, 1),
            "warm": round(warm[0].rss_mb, 1),
            "last": round(last.rss_mb, 1),
            "max": round(max(s.rss_mb for s in samples), 1),
        },
        "growth_mb_per_min": round(slope([(s.t, s.rss_mb) for s in warm]) * 60, 3),
        "nodes_live": {"mean": round(statistics.fmean(s.nodes_live for s in samples), 1)},
        "published": {
            "events": published.get("events"),
            "connects": published.get("connects"),
            "failed": published.get("failed"),
        },
        "drain": drained,
        "series": [
            {
                "t": round(s.t - first.t, 1),
                "consumed": int(s.consumed),
                "cpu_s": round(s.cpu_s, 1),
                "rss_mb": round(s.rss_mb, 1),
                "stream": s.stream,
                "nodes": s.nodes_live,
            }
            for s in samples[:: max(1, len(samples) // args.series_points)]
        ],
    }


def long_report(samples: list[Sample], args: argparse.Namespace, speed: float) -> dict[str, Any]:
    """Per window of ``--window-min`` minutes: each figure at the window's end (the rates
    over the window); each figure's slope per hour with its standard error and as a share
    of its mean level over the second half of the run; each figure's change from a virtual
    week earlier (``week_over_week``: the same hour of the same weekday, so the week's
    cycle of traffic cancels out, which a slope over part of a week cannot tell from
    growth); and every sample, for other analyses."""
    first = samples[0]
    window_s = args.window_min * 60.0
    rows: list[dict[str, Any]] = []
    edge = first.t
    previous = first
    for sample in samples[1:]:
        if sample.t - edge < window_s and sample is not samples[-1]:
            continue
        rows.append(window_row(previous, sample, first.t))
        previous, edge = sample, sample.t
    return {
        "window_min": args.window_min,
        "retention_hours": args.retention_hours,
        "windows": rows,
        **long_trends(samples, speed, args.retention_hours, window_s),
        "samples": [sample_row(s, first.t) for s in samples],
    }


def long_trends(
    samples: list[Sample], speed: float, retention_hours: float, window_s: float
) -> dict[str, Any]:
    """The long report's fits: over the second half (``second_half``) and a week apart
    (``week_over_week``, warm once the first departed users are forgotten: a cohort's stay
    plus the retention)."""
    first = samples[0]
    half = first.t + (samples[-1].t - first.t) / 2
    return {
        "second_half": trends([s for s in samples if s.t >= half]),
        "week_over_week": week_over_week(
            samples,
            7 * 86_400.0 / speed,  # wall seconds of one virtual week
            warm_s=warm_wall_s(retention_hours, speed),
            window_s=window_s,
        ),
    }


def warm_wall_s(retention_hours: float, speed: float) -> float:
    """Wall seconds until the churn soak is warm: the first departed users forgotten (a
    cohort's stay of 48 h plus the retention)."""
    return (48.0 + retention_hours) * 3600.0 / speed


def snapshot_growth(
    files: list[Path], *, week_s: float, warm_s: float, tolerance_s: float, top: int
) -> dict[str, Any]:
    """Which lines of code hold more memory a virtual week later (``--snapshot-min``): each
    snapshot taken once warm against the one taken closest to a week after it (within
    ``tolerance_s``; without such a pair, the first warm snapshot against the last). Per
    line (``file:line`` of the allocation), its growth in every pair, listed for the ``top``
    lines by their mean growth; the pairs' totals too. A line that grows in every pair grows
    with uptime; one that follows the users held moves both ways."""
    if len(files) < 2:
        return {"snapshots": len(files), "pairs": []}
    taken = [taken_at(f) for f in files]
    start = taken[0]
    warm = [i for i, t in enumerate(taken) if t - start >= warm_s] or [0]
    pairs: list[tuple[int, int]] = []
    for i in warm:
        j = min(range(len(files)), key=lambda k: abs(taken[k] - taken[i] - week_s))
        if j > i and abs(taken[j] - taken[i] - week_s) <= tolerance_s:
            pairs.append((i, j))
    if not pairs:
        pairs = [(warm[0], len(files) - 1)]
    by_line: dict[str, list[float]] = {}
    totals = []
    for n, (i, j) in enumerate(pairs):
        before = tracemalloc.Snapshot.load(str(files[i]))
        after = tracemalloc.Snapshot.load(str(files[j]))
        diffs = after.compare_to(before, "lineno")
        totals.append(
            {
                "from_s": round(taken[i] - start, 1),
                "to_s": round(taken[j] - start, 1),
                "traced_mb_before": round(sum(d.size - d.size_diff for d in diffs) / 2**20, 3),
                "growth_mb": round(sum(d.size_diff for d in diffs) / 2**20, 3),
            }
        )
        for d in diffs:
            line = str(d.traceback[0])
            by_line.setdefault(line, [0.0] * len(pairs))[n] = d.size_diff / 1024
        print(f"compared snapshots {n + 1} of {len(pairs)}", file=sys.stderr)
    ranked = sorted(by_line.items(), key=lambda kv: -statistics.fmean(kv[1]))
    return {
        "snapshots": len(files),
        "pairs": totals,
        "top_lines": [
            {
                "line": line,
                "mean_kb": round(statistics.fmean(kb), 1),
                "kb_per_pair": [round(x, 1) for x in kb],
                "grew_in_every_pair": all(x > 0 for x in kb),
            }
            for line, kb in ranked[:top]
        ],
    }


def growth_of(folder: Path, args: argparse.Namespace, speed: float) -> dict[str, Any]:
    """``snapshot_growth`` of the snapshots in ``folder``, taken every ``--snapshot-min``
    on a clock at ``speed``."""
    return snapshot_growth(
        snapshot_files(folder),
        week_s=7 * 86_400.0 / speed,
        warm_s=warm_wall_s(args.retention_hours, speed),
        tolerance_s=args.snapshot_min * 30.0,
        top=args.snapshot_top,
    )


def snapshots_of(folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    """``--snapshots-of``: the snapshots of a run stopped before its end, or compared again
    with other settings (``--habits-speed``, ``--retention-hours``)."""
    return {
        "benchmark": "soak-snapshots",
        "folder": str(folder),
        "speed": args.habits_speed,
        "snapshot_growth": growth_of(folder, args, args.habits_speed),
    }


def refit(path: Path) -> dict[str, Any]:
    """A long soak's JSON with its fits made again from its samples (``--refit``): a
    change to the analysis needs no new two-hour run."""
    report: dict[str, Any] = json.loads(path.read_text())
    for name, result in report["workloads"].items():
        long = result.get("long")
        if long is None:
            continue
        if "samples" not in long:
            raise SystemExit(f"{path}: the long soak of {name} has no samples to fit again")
        samples = [sample_from_row(row) for row in long["samples"]]
        long.update(
            long_trends(
                samples, result["speed"], long["retention_hours"], long["window_min"] * 60.0
            )
        )
    report["refit"] = time.time()
    return report


SAMPLE_ROW: Final = {
    "t": 1,
    "rss_mb": 2,
    "heap_blocks": 0,
    "state_bytes": 0,
    "redis_used_mb": 3,
    "users_tracked": 0,
    "forgotten": 0,
    "consumed": 0,
    "cpu_s": 2,
    "scoring_s": 3,
    "ticks": 0,
    "traced_mb": 2,
    "brk_heap_mb": 2,
    "anon_mb": 2,
    "file_mb": 2,
}
"""The fields of a sample the long report keeps, with their decimals (0: a whole number)."""


def sample_row(sample: Sample, t0: float) -> dict[str, float]:
    """A sample as the long report keeps it, its time from ``t0``."""
    values = {name: float(getattr(sample, name)) for name in SAMPLE_ROW} | {"t": sample.t - t0}
    return {
        name: round(values[name], digits) if digits else int(values[name])
        for name, digits in SAMPLE_ROW.items()
    }


def sample_from_row(row: dict[str, float]) -> Sample:
    """A kept sample back (``forgotten`` and the regions may be missing from older
    reports); what the row does not keep is 0."""
    kept = {name: row.get(name, 0) for name in SAMPLE_ROW}
    return Sample(**kept, dead=0.0, stream=0, nodes_live=0, ready=0)  # type: ignore[arg-type]


STOCKS: Final = (
    "rss_mb",
    *REGIONS,
    "traced_mb",
    "heap_blocks",
    "state_bytes",
    "redis_used_mb",
    "users_tracked",
)
"""The figures that are levels (not rates): what must not grow with uptime."""


def week_over_week(
    samples: list[Sample], week_s: float, *, warm_s: float, window_s: float
) -> dict[str, Any] | None:
    """Each figure over windows of ``window_s`` against the same window a virtual week
    earlier, for every window whose week-earlier twin starts after ``warm_s``: levels by
    their mean over the window, rates over the window (CPU per event, scoring time per
    tick). Per figure the mean change, its standard error over the windows (which do not
    overlap), and the change as a share of the week-earlier level; None with fewer than 3
    windows (the churn soak needs 2 h at x240, 20 virtual days, for a week after its
    warm-up)."""
    first = samples[0]
    times = [s.t for s in samples]
    ends: list[float] = []
    end = first.t + warm_s + week_s + window_s
    while end <= samples[-1].t:
        ends.append(end)
        end += window_s
    if len(ends) < 3:
        return None

    def window(end: float) -> list[Sample]:
        """The samples within ``(end - window_s, end]``, with the one before them first."""
        lo = bisect.bisect_right(times, end - window_s)
        hi = bisect.bisect_right(times, end)
        return samples[max(0, lo - 1) : hi]

    def figures(got: list[Sample]) -> dict[str, float]:
        inside = got[1:]
        a, b = got[0], got[-1]
        out = {name: statistics.fmean(float(getattr(s, name)) for s in inside) for name in STOCKS}
        if b.consumed > a.consumed:
            out["cpu_ms_per_event"] = 1000 * (b.cpu_s - a.cpu_s) / (b.consumed - a.consumed)
        if b.ticks > a.ticks:
            out["scoring_ms_per_tick"] = 1000 * (b.scoring_s - a.scoring_s) / (b.ticks - a.ticks)
        return out

    pairs = [(figures(window(end)), figures(window(end - week_s))) for end in ends]
    result: dict[str, Any] = {"windows": len(ends), "week_s": round(week_s, 1)}
    for name in (*STOCKS, "cpu_ms_per_event", "scoring_ms_per_tick"):
        got = [(now[name], before[name]) for now, before in pairs if name in now and name in before]
        if len(got) < 3:
            continue
        changes = [now - before for now, before in got]
        mean = statistics.fmean(changes)
        level = statistics.fmean(before for _, before in got)
        result[name] = {
            "change_per_week": round(mean, 4),
            "stderr": round(statistics.stdev(changes) / len(changes) ** 0.5, 4),
            "share_per_week": round(mean / level, 5) if level else None,
        }
    return result


def trends(second: list[Sample]) -> dict[str, Any]:
    """Each figure's ``trend`` over ``second`` (consecutive samples)."""
    pairs = list(itertools.pairwise(second))
    figures: dict[str, list[tuple[float, float]]] = {
        "rss_mb": [(s.t, s.rss_mb) for s in second],
        **{region: [(s.t, getattr(s, region)) for s in second] for region in REGIONS},
        "traced_mb": [(s.t, s.traced_mb) for s in second],
        "heap_blocks": [(s.t, s.heap_blocks) for s in second],
        "state_bytes": [(s.t, float(s.state_bytes)) for s in second],
        "redis_used_mb": [(s.t, s.redis_used_mb) for s in second],
        "users_tracked": [(s.t, s.users_tracked) for s in second],
        # rates between consecutive samples with events / ticks in between
        "cpu_ms_per_event": [
            (b.t, 1000 * (b.cpu_s - a.cpu_s) / (b.consumed - a.consumed))
            for a, b in pairs
            if b.consumed > a.consumed
        ],
        "scoring_ms_per_tick": [
            (b.t, 1000 * (b.scoring_s - a.scoring_s) / (b.ticks - a.ticks))
            for a, b in pairs
            if b.ticks > a.ticks
        ],
    }
    return {name: trend(points) for name, points in figures.items()}


def window_row(a: Sample, b: Sample, t0: float) -> dict[str, Any]:
    events = b.consumed - a.consumed
    ticks = b.ticks - a.ticks
    return {
        "minute": round((b.t - t0) / 60, 1),
        "rss_mb": round(b.rss_mb, 1),
        **{region: round(getattr(b, region), 1) for region in REGIONS},
        "traced_mb": round(b.traced_mb, 1),
        "heap_blocks": int(b.heap_blocks),
        "state_bytes": b.state_bytes,
        "redis_used_mb": round(b.redis_used_mb, 2),
        "users_tracked": int(b.users_tracked),
        "users_forgotten": int(b.forgotten),
        "events": int(events),
        "cpu_ms_per_event": round(1000 * (b.cpu_s - a.cpu_s) / events, 3) if events else None,
        "scoring_ms_per_tick": round(1000 * (b.scoring_s - a.scoring_s) / ticks, 2)
        if ticks
        else None,
        "nodes_live": b.nodes_live,
    }


def trend(points: list[tuple[float, float]]) -> dict[str, Any]:
    """Least-squares slope per hour, its standard error, the mean level, and the slope as a
    share of the level per hour; the range of the points and their standard deviation from
    the line (how much they jump about it); ``flat``: the slope within two standard errors
    of 0, or under 1 % of the level per hour."""
    n = len(points)
    if n < 3:
        return {"n": n}
    hours = [((x - points[0][0]) / 3600.0, y) for x, y in points]
    b, my, se = least_squares(hours)
    mx = statistics.fmean(x for x, _ in hours)
    share = b / my if my else None
    return {
        "n": n,
        "mean": round(my, 4),
        "slope_per_h": round(b, 4),
        "stderr_per_h": round(se, 4),
        "slope_share_per_h": None if share is None else round(share, 5),
        "flat": abs(b) <= 2 * se or (share is not None and abs(share) < 0.01),
        "min": round(min(y for _, y in points), 4),
        "max": round(max(y for _, y in points), 4),
        "residual_sd": round(statistics.pstdev(y - (my + b * (x - mx)) for x, y in hours), 4),
    }


def trace_malloc(args: argparse.Namespace) -> dict[str, str]:
    """The service's environment for ``--trace-malloc N``: tracemalloc from its start, N
    frames a trace (its ``provisioner_python_traced_bytes`` then says what Python and numpy
    hold)."""
    return {"PYTHONTRACEMALLOC": str(args.trace_malloc)} if args.trace_malloc else {}


def long_env(args: argparse.Namespace) -> dict[str, str]:
    """The long soak's settings for every process: log retention and user retention."""
    if not args.long:
        return {}
    return {
        "PROVISIONER_STREAM_MAX_AGE_S": repr(args.retention_hours * 3600.0),
        "PROVISIONER_USER_RETENTION_HOURS": repr(args.retention_hours),
    }


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y over x (0 with fewer than two points)."""
    return least_squares(points)[0] if len(points) >= 2 else 0.0


def least_squares(points: list[tuple[float, float]]) -> tuple[float, float, float]:
    """The least-squares slope of y over x, the mean of y, and the slope's standard error
    (NaN with fewer than three points); slope 0 when every x is the same."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if not sxx:
        return 0.0, my, math.nan
    b = sum((x - mx) * (y - my) for x, y in points) / sxx
    if len(points) < 3:
        return b, my, math.nan
    residuals = sum((y - (my + b * (x - mx))) ** 2 for x, y in points)
    return b, my, (residuals / (len(points) - 2) / sxx) ** 0.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="wall minutes per workload")
    parser.add_argument("--speed", type=float, default=60.0, help="clock speed-up (seed)")
    parser.add_argument(
        "--habits-speed",
        type=float,
        default=240.0,
        help="clock speed-up of the habits workload (its users follow the time of day: "
        "240 covers 40 virtual hours in 10 minutes)",
    )
    parser.add_argument("--workloads", default="seed,habits")
    parser.add_argument("--habits-users", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--model",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="train and promote a model first (on another seed's history)",
    )
    parser.add_argument(
        "--history-hours", type=float, default=HISTORY_HOURS, help="seed: training history"
    )
    parser.add_argument(
        "--habits-history-hours",
        type=float,
        default=DAY_PLANNED_HISTORY_HOURS,
        help="habits: training history (a day of weekend holds too few connects)",
    )
    parser.add_argument("--rps", type=float, default=20.0, help="predict requests per second")
    parser.add_argument("--sample-s", type=float, default=5.0)
    parser.add_argument("--warm-fraction", type=float, default=0.25)
    parser.add_argument("--settle-s", type=float, default=3.0)
    parser.add_argument("--series-points", type=int, default=20)
    parser.add_argument(
        "--long",
        action="store_true",
        help="the long soak: churn workload, x120, 120 minutes, log and users retained "
        "--retention-hours, a table per --window-min (explicit flags still win)",
    )
    parser.add_argument("--retention-hours", type=float, default=48.0)
    parser.add_argument("--window-min", type=float, default=10.0)
    parser.add_argument(
        "--trace-malloc",
        type=int,
        default=0,
        metavar="N",
        help="run the service under tracemalloc, N frames a trace (slower), and sample what "
        "it traces (0: not)",
    )
    parser.add_argument(
        "--snapshot-min",
        type=float,
        default=0.0,
        metavar="M",
        help="every M minutes, a tracemalloc snapshot of the service (serve "
        "--memory-snapshots), compared a virtual week apart at the end (snapshot_growth; "
        "with --trace-malloc, traced from the start; 0: none)",
    )
    parser.add_argument("--snapshot-top", type=int, default=15, help="lines snapshot_growth lists")
    parser.add_argument("--json", type=Path, help="also write the JSON here")
    parser.add_argument(
        "--refit",
        type=Path,
        metavar="JSON",
        help="no run: make a long soak's fits again from the samples in its JSON",
    )
    parser.add_argument(
        "--snapshots-of",
        type=Path,
        metavar="DIR",
        help="no run: snapshot_growth of the snapshots in DIR (a --workdir run's "
        "WORKLOAD/snapshots), with this run's speed and retention",
    )
    parser.add_argument(
        "--workdir", type=Path, help="a new folder to run in and keep (processes' logs, Redis)"
    )
    if parser.parse_known_args()[0].long:
        parser.set_defaults(**LONG_DEFAULTS)  # flags given on the command line still win
    args = parser.parse_args()
    if args.refit is not None:
        emit(refit(args.refit), args.json)
        return
    if args.snapshots_of is not None:
        emit(snapshots_of(args.snapshots_of, args), args.json)
        return
    if platform.system() != "Linux":
        parser.error("reads /proc: Linux only")
    started = time.time()
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=False)
        results = {w: soak(w, args, args.workdir) for w in args.workloads.split(",")}
    else:
        with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
            results = {w: soak(w, args, Path(tmp)) for w in args.workloads.split(",")}
    report = {
        "benchmark": "soak",
        "started": started,
        "minutes_per_workload": args.minutes,
        "rps": args.rps,
        "workloads": results,
        "ok": all(
            r["end"]["lost_in_log"] == 0
            and r["end"]["lost_published"] == 0
            and r["end"].get("lost_on_the_way", 0) == 0
            and r["end"]["watermark_is_last_entry"]
            and not r["nodes"]["leaked"]
            for r in results.values()
        ),
    }
    emit(report, args.json)


if __name__ == "__main__":
    main()
