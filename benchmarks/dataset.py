"""Dataset build time: point-in-time features and labels from a large event log.

Generates a week of the habits workload with enough users for ``--events`` events, writes
it as a Parquet trace (not timed), then times what training does: load the trace into an
event table, build the dataset (cutoffs, batch features, labels) with the default spec.
Prints one JSON object.

    .venv/bin/python benchmarks/dataset.py [--events 10000000] [--json out.json]
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, and this file's name would
# hide the `service` package. Look for packages from the project instead.
if Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import resource
import tempfile
import time
from typing import Any

import pyarrow.parquet as pq

from benchmarks.common import emit
from features.table import EventTable
from features.trace import write_parquet
from simulation.workloads import generate
from training.dataset import DatasetSpec, build_dataset

EVENTS_PER_USER_WEEK = 354.0
"""Measured: 1000 habits users make 354k events in 7 days (seed 1)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--hours", type=float, default=168.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    users = max(1, round(args.events / EVENTS_PER_USER_WEEK * 168.0 / args.hours))
    spec = DatasetSpec()
    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp) / "habits.parquet"
        started = time.perf_counter()
        events = write_parquet(
            trace, generate("habits", hours=args.hours, seed=args.seed, users=users)
        )
        generate_s = time.perf_counter() - started

        started = time.perf_counter()
        table = EventTable.from_arrow(pq.read_table(trace))
        load_s = time.perf_counter() - started
    started = time.perf_counter()
    data = build_dataset(table, spec)
    build_s = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result: dict[str, Any] = {
        "benchmark": "dataset",
        "workload": "habits",
        "hours": args.hours,
        "users": users,
        "events": events,
        "spec": {
            "horizon_s": spec.horizon_s,
            "every_s": spec.every_s,
            "quiet_after_s": spec.quiet_after_s,
            "quiet_stride": spec.quiet_stride,
        },
        "rows": len(data),
        "positives": data.positives,
        "weighted_rows": float(data.w.sum()),
        "features": len(data.feature_names),
        "generate_and_write_s": round(generate_s, 1),
        "load_s": round(load_s, 2),
        "build_s": round(build_s, 2),
        "load_and_build_s": round(load_s + build_s, 2),
        "events_per_s": round(events / (load_s + build_s)),
        "peak_rss_mb": round(peak_mb),
    }
    emit(result, args.json)


if __name__ == "__main__":
    main()
