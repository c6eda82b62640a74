"""The Dask booster against where its rows lie: one model per placement of the same rows.

LightGBM's distributed learner finds the bins of some features from one worker's rows, so
the model trained on a cluster depends on which rows each worker holds. For each
``--hours`` of the seed workload this trains the single-machine model, then on a local
cluster of ``--workers`` the same rows split here in each of ``--partitions`` user
partitions, and read by the workers from an export in as many; the rows are the same every
time (the data digest says so), the test metrics are not. Prints one JSON object.

    .venv/bin/python benchmarks/dask_placement.py [--hours 3,8] [--partitions 2,3,4]
        [--json out.json]
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, and this file's name would
# hide the `service` package. Look for packages from the project instead.
if Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import tempfile
from typing import Any

from benchmarks.common import emit
from features.partitioned import write_partitioned
from features.table import EventTable
from simulation.workloads import generate
from training.cluster import DaskAddress, dask_client
from training.dataset import DatasetSpec, build_dataset
from training.distributed import DaskTraining
from training.export_on_workers import from_export
from training.train import TrainConfig, TrainResult, train


def figures(how: str, partitions: int | None, result: TrainResult, digest: str) -> dict[str, Any]:
    model = result.metrics["model"]
    return {
        "path": how,
        "partitions": partitions,
        "data_digest": digest[:16],
        "trees": result.trees,
        "roc_auc": round(model.roc_auc, 5),
        "log_loss": round(model.log_loss, 5),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", default="3,8", help="comma-separated hours of seed")
    parser.add_argument("--partitions", default="2,3,4", help="comma-separated")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    hours = [float(h) for h in args.hours.split(",")]
    counts = [int(p) for p in args.partitions.split(",")]
    spec, config = DatasetSpec(), TrainConfig()
    runs: list[dict[str, Any]] = []
    with (
        dask_client(DaskAddress(local_workers=args.workers)) as client,
        tempfile.TemporaryDirectory(prefix="placement-") as tmp,
    ):
        for h in hours:
            events = list(generate("seed", hours=h, seed=args.seed))
            rows = build_dataset(EventTable.from_events(events), spec)
            single = train(rows, config)
            runs.append({"hours": h} | figures("single", None, single, rows.digest()))
            for n in counts:
                job = DaskTraining(client, n)
                built = job.build_dataset(EventTable.from_events(events), spec)
                result = train(built, config, fit=job.fit)
                runs.append({"hours": h} | figures("split here", n, result, built.digest()))
                directory = Path(tmp) / f"seed-{h:g}h-{n}"
                write_partitioned(directory, events, n, since=None, until=None, exported_at=0.0)
                source = from_export(client, directory)
                job = DaskTraining(client, n)
                built = job.build_dataset(source.table, spec)
                result = train(built, config, fit=job.fit)
                runs.append({"hours": h} | figures("export", n, result, built.digest()))
                print(f"{h:g} h, {n} partitions: done", file=sys.stderr)
    for run in runs:
        single_loss = next(
            r["log_loss"] for r in runs if r["hours"] == run["hours"] and r["path"] == "single"
        )
        run["log_loss_vs_single"] = round(run["log_loss"] / single_loss - 1, 4)
    emit(
        {
            "benchmark": "dask_placement",
            "workload": "seed",
            "seed": args.seed,
            "workers": args.workers,
            "runs": runs,
        },
        args.json,
    )


if __name__ == "__main__":
    main()
