"""The long soak's fits on samples of known shape (a weekly cycle is no growth, growth is),
and its reading of a real process's resident memory by region."""

from __future__ import annotations

import json
import math
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest

from benchmarks.soak import (
    Sample,
    labelled,
    refit,
    resident_by_region,
    rss_mb,
    sample_from_row,
    sample_row,
    snapshot_growth,
    trend,
    week_over_week,
)

SPEED = 240.0
WEEK_S = 7 * 86_400.0 / SPEED
WARM_S = 96 * 3600.0 / SPEED


def soak_samples(growth_per_week: float, *, minutes: float = 120.0) -> list[Sample]:
    """Samples every 20 s of a level that follows a weekly cycle (amplitude 300) plus
    ``growth_per_week``, and of rates (CPU per event, scoring per tick) whose level follows
    the same cycle."""
    samples: list[Sample] = []
    cpu = scoring = consumed = ticks = 0.0
    t = 0.0
    while t <= minutes * 60:
        cycle = math.sin(2 * math.pi * t / WEEK_S)
        level = 1000 + 300 * cycle + growth_per_week * t / WEEK_S
        events, tick_count = 400.0, 40.0
        consumed += events
        ticks += tick_count
        cpu += events * (0.002 + 0.0005 * cycle)
        scoring += tick_count * (0.003 + 0.001 * cycle)
        samples.append(
            Sample(
                t=t,
                consumed=consumed,
                dead=0.0,
                cpu_s=cpu,
                rss_mb=level,
                stream=0,
                nodes_live=0,
                ready=0,
                heap_blocks=level,
                state_bytes=int(level),
                redis_used_mb=level,
                scoring_s=scoring,
                ticks=ticks,
                users_tracked=level,
            )
        )
        t += 20.0
    return samples


def test_a_weekly_cycle_is_no_change_week_over_week() -> None:
    samples = soak_samples(0.0)
    fits = week_over_week(samples, WEEK_S, warm_s=WARM_S, window_s=600.0)
    assert fits is not None
    assert fits["windows"] == 5
    for name in (
        "rss_mb",
        "state_bytes",
        "redis_used_mb",
        "cpu_ms_per_event",
        "scoring_ms_per_tick",
    ):
        assert fits[name]["change_per_week"] == pytest.approx(0.0, abs=1e-3), name


def test_growth_shows_week_over_week() -> None:
    fits = week_over_week(soak_samples(30.0), WEEK_S, warm_s=WARM_S, window_s=600.0)
    assert fits is not None
    assert fits["rss_mb"]["change_per_week"] == pytest.approx(30.0, abs=0.5)
    assert fits["rss_mb"]["share_per_week"] == pytest.approx(0.03, abs=0.002)


def test_too_short_a_run_has_no_week_over_week() -> None:
    assert (
        week_over_week(soak_samples(0.0, minutes=60), WEEK_S, warm_s=WARM_S, window_s=600) is None
    )


def test_a_trend_says_how_far_the_points_jump_about_its_line() -> None:
    # 2 MB an hour, alternately 1 MB above and below the line, one point a minute
    points = [(60.0 * i, 300.0 + 2.0 * i / 60 + (1.0 if i % 2 else -1.0)) for i in range(120)]
    fit = trend(points)
    assert fit["slope_per_h"] == pytest.approx(2.0, abs=0.05)
    assert fit["residual_sd"] == pytest.approx(1.0, abs=0.01)
    assert (fit["min"], fit["max"]) == (299.0, pytest.approx(304.97, abs=0.01))
    smooth = trend([(60.0 * i, 300.0 + 2.0 * i / 60) for i in range(120)])
    assert smooth["residual_sd"] == pytest.approx(0.0, abs=1e-9)


def test_refit_makes_the_fits_again_from_the_samples(tmp_path: Path) -> None:
    samples = soak_samples(30.0)
    rows = [sample_row(s, 0.0) for s in samples]
    long: dict[str, Any] = {
        "window_min": 10.0,
        "retention_hours": 48.0,
        "second_half": {},
        "week_over_week": None,
        "samples": rows,
    }
    path = tmp_path / "soak.json"
    path.write_text(json.dumps({"workloads": {"churn": {"speed": SPEED, "long": long}}}))
    got = refit(path)["workloads"]["churn"]["long"]
    kept = [sample_from_row(row) for row in rows]  # rounded as the report keeps them
    assert got["week_over_week"] == week_over_week(kept, WEEK_S, warm_s=WARM_S, window_s=600.0)
    assert got["week_over_week"]["rss_mb"]["change_per_week"] == pytest.approx(30.0, abs=0.5)
    assert got["second_half"]["rss_mb"]["n"] == len([s for s in samples if s.t >= 3600])
    del long["samples"]
    path.write_text(json.dumps({"workloads": {"churn": {"speed": SPEED, "long": long}}}))
    with pytest.raises(SystemExit, match="no samples"):
        refit(path)


def test_reconcile_actions_are_read_per_action_from_metrics() -> None:
    registry = CollectorRegistry()
    reconciled = Counter("provisioner_reconciled", "", ["action"], registry=registry)
    reconciled.labels(action="ready").inc(3)
    reconciled.labels(action="forget").inc()
    text = generate_latest(registry).decode()
    assert labelled(text, "provisioner_reconciled_total", "action") == {"ready": 3, "forget": 1}


def test_resident_memory_is_told_by_region() -> None:
    import subprocess
    import sys

    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, numpy as np; a = np.ones(100 * 2**20 // 8); print('held', flush=True);"
            " sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        regions, total = resident_by_region(child.pid), rss_mb(child.pid)
    finally:
        child.kill()
        child.wait()
    assert regions["anon_mb"] >= 100  # numpy's 100 MiB, a mapping of its own
    assert regions["file_mb"] > 1  # the interpreter's and numpy's code
    assert sum(regions.values()) == pytest.approx(total, rel=0.02)


def grow(held: list[bytearray]) -> None:
    held.append(bytearray(512 * 1024))


def cycle(held: list[bytearray]) -> None:
    held.append(bytearray(1024 * 1024))


def test_snapshot_growth_tells_a_line_that_grows_a_week_on_from_one_that_cycles(
    tmp_path: Path,
) -> None:
    grown: list[bytearray] = []
    cycled: list[bytearray] = []
    taken = [0.0, WEEK_S / 2, WEEK_S, 1.5 * WEEK_S]  # pairs: the first and third, second and last
    files = []
    tracemalloc.start(1)
    try:
        for serial, t in enumerate(taken, start=1):
            grow(grown)
            cycled.clear()
            if serial in (2, 3):
                cycle(cycled)
            files.append(tmp_path / f"{serial}-{int(1e9 + t * 1000)}.tracemalloc")
            tracemalloc.take_snapshot().dump(str(files[-1]))
    finally:
        tracemalloc.stop()
    got = snapshot_growth(files, week_s=WEEK_S, warm_s=0.0, tolerance_s=10.0, top=50)
    assert [(p["from_s"], p["to_s"]) for p in got["pairs"]] == [
        (0.0, round(WEEK_S, 1)),
        (round(WEEK_S / 2, 1), round(1.5 * WEEK_S, 1)),
    ]
    by_line = {row["line"]: row for row in got["top_lines"]}
    growing = by_line[f"{__file__}:{grow.__code__.co_firstlineno + 1}"]
    cycling = by_line[f"{__file__}:{cycle.__code__.co_firstlineno + 1}"]
    assert got["top_lines"][0] is growing  # the line that grows leads
    assert growing["grew_in_every_pair"]  # two 512 KiB buffers a week (and their lists' slots)
    assert growing["kb_per_pair"] == [pytest.approx(1024, abs=1)] * 2
    assert not cycling["grew_in_every_pair"]
    assert cycling["kb_per_pair"] == [pytest.approx(1024, abs=1), pytest.approx(-1024, abs=1)]
    # too short for a week apart: the first warm snapshot against the last
    short = snapshot_growth(files[:2], week_s=WEEK_S, warm_s=0.0, tolerance_s=10.0, top=5)
    assert [(p["from_s"], p["to_s"]) for p in short["pairs"]] == [(0.0, round(WEEK_S / 2, 1))]
