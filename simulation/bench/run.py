"""The whole bench: every policy of a request on the same history, and the sweep when asked."""

from __future__ import annotations

import time

from simulation.bench.policy_run import run_policy
from simulation.bench.progress import Progress
from simulation.bench.request import BenchRequest
from simulation.bench.result import BenchResult
from simulation.bench.setup import prepare
from simulation.bench.sweep import run_sweep


def run_bench(
    request: BenchRequest, *, sweep: bool = False, progress: Progress | None = None
) -> BenchResult:
    """Every policy of ``request`` on the same history (and the sweep when asked)."""
    started = time.perf_counter()
    setup = prepare(request, progress=progress)
    results = tuple(run_policy(spec, setup, progress=progress) for spec in request.policies)
    swept = run_sweep(request.policies, setup, results, progress=progress) if sweep else ()
    return BenchResult(request, setup, results, swept, time.perf_counter() - started)
