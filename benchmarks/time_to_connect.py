"""Time-to-connect models against the one-window classifier, on held-out time.

Builds the point-in-time dataset of a generated workload for the label horizon the bench
would use with these boots (``simulation.bench.model.bench_horizon``), then fits on the
same split (``training.curve``):

- ``hazard``: the discrete-time hazard model (person-period rows, one LightGBM);
- ``per_horizon``: one LightGBM per horizon;
- ``classifier``: today's calibrated one-window classifier, its probability at the horizon
  carried to shorter times by a constant hazard, as the service does (``1 - (1-p)^(t/H)``).

Prints one JSON object: per model, the integrated Brier score, the mean log loss over the
horizons and each horizon's log loss, Brier score, calibration error and ROC AUC on the
test slice, and fit seconds; ``kept`` names the curve model with the lower integrated
Brier score.

    .venv/bin/python benchmarks/time_to_connect.py [--workload seed] [--hours 48]
        [--users N] [--seed 1] [--boot uniform:10:29] [--periods 8] [--json out.json]
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, and this file's name would
# hide the `service` package. Look for packages from the project instead.
if Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import time
from collections.abc import Callable
from typing import Any

from benchmarks.common import emit
from features.table import EventTable
from models.connect_curve import DEFAULT_CURVE_PERIODS, CurveGrid, CurveKind, carried_curve
from service.config import ServiceConfig
from simulation.bench.history import workload_history
from simulation.bench.model import bench_horizon
from simulation.nodes.boot import DEFAULT_BOOT_SPEC, parse_boot_schedule
from training.curve import CurveProgress, curve_metrics, fit_curve
from training.dataset import DatasetSpec, build_dataset
from training.train import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="seed")
    parser.add_argument("--hours", type=float, default=48.0)
    parser.add_argument("--users", type=int, default=None)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--boot", default=DEFAULT_BOOT_SPEC, help="node boot times, as the bench takes them"
    )
    parser.add_argument("--periods", type=int, default=DEFAULT_CURVE_PERIODS)
    parser.add_argument("--json", type=Path, default=None, help="Also write the JSON here.")
    args = parser.parse_args()

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    history = workload_history(args.workload, hours=args.hours, seed=args.seed, users=args.users)
    try:
        boots = parse_boot_schedule(args.boot)
    except ValueError as e:
        parser.error(f"--boot: {e}")
    horizon = bench_horizon(boots, args.seed, ServiceConfig())
    say(f"{history.source}: {len(history.events)} events; {horizon.describe()}")
    started = time.perf_counter()
    dataset = build_dataset(
        EventTable.from_events(history.events), DatasetSpec(horizon_s=horizon.horizon_s)
    )
    say(
        f"dataset: {len(dataset)} rows, {dataset.positives} positive, "
        f"{time.perf_counter() - started:.1f} s"
    )
    grid = CurveGrid.even(horizon.horizon_s, args.periods)
    models: dict[str, Any] = {}
    for kind in CurveKind:
        started = time.perf_counter()
        result = fit_curve(dataset, kind, grid, progress=_trees(say))
        models[kind.value] = _rounded(result.metrics) | {
            "fit_s": round(time.perf_counter() - started, 1)
        }
        say(f"{kind.value}: integrated Brier {result.metrics['integrated_brier']:.6f}")
    started = time.perf_counter()
    classifier = train(dataset)
    p = classifier.test_probability["model"]
    carried = carried_curve(p, grid.horizon_s, grid)
    metrics = curve_metrics(carried, classifier.split.test, grid)
    models["classifier"] = _rounded(metrics) | {"fit_s": round(time.perf_counter() - started, 1)}
    say(f"classifier: integrated Brier {metrics['integrated_brier']:.6f}")
    kept = min((k.value for k in CurveKind), key=lambda k: models[k]["integrated_brier"])
    emit(
        {
            "benchmark": "time_to_connect",
            "workload": args.workload,
            "hours": args.hours,
            "users": args.users,
            "seed": args.seed,
            "boot": args.boot,
            "events": len(history.events),
            "horizon": horizon.as_dict(),
            "rows": len(dataset),
            "test_rows": len(classifier.split.test),
            "models": models,
            "kept": kept,
        },
        args.json,
    )


def _trees(say: Callable[[str], None]) -> CurveProgress:
    """Progress: a line per 100 trees of each fit."""

    def progress(stage: str, done: int, total: int) -> None:
        if done % 100 == 0:
            say(f"  {stage}: {done} trees")

    return progress


def _rounded(metrics: dict[str, Any]) -> dict[str, Any]:
    def r(value: Any) -> Any:
        if isinstance(value, float):
            return float(f"{value:.6g}")
        if isinstance(value, dict):
            return {k: r(v) for k, v in value.items()}
        if isinstance(value, list):
            return [r(v) for v in value]
        return value

    out: dict[str, Any] = r(metrics)
    return out


if __name__ == "__main__":
    main()
