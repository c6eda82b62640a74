"""Event-log throughput: import a trace into the stream, read it back for training.

Prints one JSON object: import and read events/s, beside the raw pipelined XADD rate of
the same server measured in the same run (Python pipeline and, when installed,
``redis-benchmark``). Uses ``REDIS_URL`` when set, else an embedded server in a temp dir.

    .venv/bin/python benchmarks/eventlog.py [--events 1000000] [--json out.json]
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, and this file's name would
# hide the `service` package. Look for packages from the project instead.
if Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import os
import random
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import redis

from benchmarks.common import emit, redis_server
from features.eventlog import EventLog, LogKeys
from features.events import Event, UserActivity, UserConnect, UserDisconnect, encode_payload
from features.trace import write_jsonl
from features.transfer import import_trace

T0 = 1_732_492_800.0


def synthetic_events(n: int, users: int = 50, seed: int = 1) -> Iterator[Event]:
    """Seed-like traffic: mostly activity, with connects and disconnects."""
    rng = random.Random(seed)
    ids = [f"{rng.getrandbits(128):032x}" for _ in range(users)]
    ts = T0
    for _ in range(n):
        ts += rng.randint(300, 1299) / 1000
        user = rng.choice(ids)
        roll = rng.random()
        if roll < 0.96:
            yield UserActivity(ts, user, int(ts))
        elif roll < 0.98:
            yield UserConnect(ts, user)
        else:
            yield UserDisconnect(ts, user)


def raw_pipelined_xadd(client: redis.Redis, key: str, n: int, pipeline: int = 1000) -> float:
    payload = encode_payload(UserActivity(T0, "0" * 32, int(T0)))
    fields = {"ts": repr(T0 + 0.125), "channel": "user:activity", "payload": payload}
    start = time.perf_counter()
    for offset in range(0, n, pipeline):
        pipe = client.pipeline(transaction=False)
        for _ in range(min(pipeline, n - offset)):
            pipe.xadd(key, fields)  # type: ignore[arg-type]
        pipe.execute()
    return n / (time.perf_counter() - start)


def redis_benchmark_xadd(url: str, key: str, n: int) -> float | None:
    """``redis-benchmark -P 100`` on the same XADD, when the tool and a TCP/unix URL allow."""
    tool = shutil.which("redis-benchmark")
    if tool is None:
        return None
    parsed = redis.connection.parse_url(url)  # type: ignore[no-untyped-call]
    target = (
        ["-s", str(parsed["path"])]
        if "path" in parsed
        else ["-h", str(parsed.get("host", "127.0.0.1")), "-p", str(parsed.get("port", 6379))]
    )
    payload = encode_payload(UserActivity(T0, "0" * 32, int(T0)))
    command = [
        tool,
        *target,
        "-n",
        str(n),
        "-P",
        "100",
        "-q",
        "--csv",
        "XADD",
        key,
        "*",
        "ts",
        repr(T0),
        "channel",
        "user:activity",
        "payload",
        payload,
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    for line in result.stdout.splitlines():
        # "test","rps",<6 latency columns>; the test name holds unescaped commas.
        cells = [cell.strip('"') for cell in line.rsplit(",", 7)]
        if len(cells) == 8 and cells[0].startswith("XADD"):
            return float(cells[1])
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--json", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    n = args.events
    with tempfile.TemporaryDirectory() as tmp, redis_server() as url:
        client = redis.Redis.from_url(url)
        prefix = f"bench:{os.getpid()}:"
        try:
            trace = Path(tmp) / "trace.jsonl"
            write_jsonl(trace, synthetic_events(n))
            raw_key = f"{prefix}raw"
            raw_rate = raw_pipelined_xadd(client, raw_key, n)
            client.delete(raw_key)
            tool_rate = redis_benchmark_xadd(url, raw_key, n)
            client.delete(raw_key)

            log = EventLog(client, LogKeys(prefix))
            start = time.perf_counter()
            report = import_trace(log, trace, now=time.time())
            import_s = time.perf_counter() - start
            assert report.imported == n, report.as_dict()

            start = time.perf_counter()
            read = sum(len(batch.events) for batch in log.read())
            read_s = time.perf_counter() - start
            assert read == n
            memory = client.memory_usage(log.keys.stream) or 0
            version = str(client.info("server")["redis_version"])
        finally:
            keys = list(client.scan_iter(f"{prefix}*"))
            if keys:
                client.delete(*keys)
            client.close()
    result: dict[str, Any] = {
        "benchmark": "eventlog",
        "events": n,
        "server": "REDIS_URL" if os.environ.get("REDIS_URL") else "embedded",
        "redis_version": version,
        "import_events_per_s": round(n / import_s),
        "read_events_per_s": round(n / read_s),
        "raw_pipelined_xadd_per_s": round(raw_rate),
        "redis_benchmark_xadd_per_s": None if tool_rate is None else round(tool_rate),
        "import_vs_raw_pipelined": round(n / import_s / raw_rate, 3),
        "import_vs_redis_benchmark": None
        if tool_rate is None
        else round(n / import_s / tool_rate, 3),
        "stream_bytes_per_event": round(memory / n, 1),
    }
    emit(result, args.json)


if __name__ == "__main__":
    main()
