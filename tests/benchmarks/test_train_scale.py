"""``benchmarks/train_scale.py``'s measuring parts: the peak memory of a process tree, seen
by sampling real processes, the line through the measured peaks, and the export its
``@export`` paths train from."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from benchmarks.train_scale import PeakSampler, export_of, largest_within
from features.partitioned import read_manifest, read_partitioned
from features.trace import read_parquet, write_parquet
from simulation.workloads import generate

HOLD_MB = 200
CHILD = f"""
import sys, time
held = bytearray({HOLD_MB} * 1024 * 1024)
for i in range(0, len(held), 4096):  # touch every page: resident, not only reserved
    held[i] = 1
print("held", flush=True)
time.sleep(30)
"""


def test_the_peak_of_a_child_process_is_seen_and_named() -> None:
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import subprocess, sys; subprocess.run([sys.executable, '-c', {CHILD!r}])",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None and parent.stdout.readline().strip() == "held"
        sampler = PeakSampler(psutil.Process(parent.pid), every_s=0.05)
        sampler.sample()
        report = sampler.report()
    finally:
        for child in psutil.Process(parent.pid).children(recursive=True):
            child.kill()
        parent.kill()
        parent.wait()
    assert report["driver_peak_mb"] < HOLD_MB / 2  # the parent holds little
    (worker,) = report["workers"]
    assert HOLD_MB <= worker["peak_mb"] < HOLD_MB + 100
    assert worker["command"].startswith(sys.executable)
    # Each peak is rounded to a MiB on its own, their sum once.
    assert abs(report["sum_of_peaks_mb"] - report["driver_peak_mb"] - worker["peak_mb"]) <= 1


def test_the_largest_count_is_where_the_line_of_the_peaks_meets_the_memory() -> None:
    # 400 MB and 900 MB per million events: 24 GiB (24,576 MB) at 26.86M events.
    points = [(1_000_000, 1_300.0), (3_000_000, 3_100.0), (10_000_000, 9_400.0)]
    got = largest_within(points, 24 * 1024)
    assert got["mb_per_million_events"] == pytest.approx(900.0, abs=0.1)
    assert got["intercept_mb"] == 400
    assert got["events"] == pytest.approx((24 * 1024 - 400) / 900e-6, rel=1e-6)
    assert got["extrapolated"] and got["from_events"] == [1_000_000, 3_000_000, 10_000_000]
    assert largest_within(points[:1], 24 * 1024)["events"] is None  # one count: no line


def test_an_export_of_the_trace_holds_its_events_and_is_reused(tmp_path: Path) -> None:
    trace = tmp_path / "habits.parquet"
    written = write_parquet(trace, generate("habits", hours=6, seed=1, users=20))
    export = export_of(trace, 3)
    manifest = read_manifest(export)
    assert manifest.partitions == 3 and manifest.rows == written
    assert sorted(e.ts for e in read_partitioned(export)) == sorted(
        e.ts for e in read_parquet(trace)
    )
    made = (export / "_manifest.json").stat().st_mtime_ns
    assert export_of(trace, 3) == export and (export / "_manifest.json").stat().st_mtime_ns == made
