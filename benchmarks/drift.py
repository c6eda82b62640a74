"""Drift: the model lifecycle closed in virtual time while the population changes.

A champion trained on a day of the ``seed`` workload serves; at ``--change-at`` hours the
``habits`` population replaces the seed users. The service logs live evidence to the
champion's (and the challenger's) MLflow run every ``--publish-min`` virtual minutes, and
the retraining cron job (``retrain --when-degraded``'s code path) runs every
``--retrain-min`` virtual minutes on the last ``--window-hours`` of the event log
(``simulation.drift``). Prints one JSON object: when the change was flagged, what the
retraining job did, and the champion's live log loss before, during and after.

Real parts: Redis (``REDIS_URL``, or an embedded server), an MLflow store in a temporary
folder (SQLite), LightGBM.

    .venv/bin/python benchmarks/drift.py [--hours 36] [--change-at 8] [--seed 1]
        [--json drift.json]
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
import time

import redis

from benchmarks.common import emit, redis_server
from features.eventlog import EventLog, LogKeys
from models.registry import ModelRegistry
from provisioner.wiring import quiet_mlflow
from simulation.drift import DriftScenario, run_drift
from training.tracking import TrackingConfig


def main() -> None:
    defaults = DriftScenario()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hours", type=float, default=defaults.hours)
    parser.add_argument("--change-at", type=float, default=defaults.change_at_h)
    parser.add_argument("--history-hours", type=float, default=defaults.history_hours)
    parser.add_argument("--before", default=defaults.before)
    parser.add_argument("--after", default=defaults.after)
    parser.add_argument("--users-after", type=int, default=defaults.users_after)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--publish-min", type=float, default=defaults.publish_every_s / 60)
    parser.add_argument("--retrain-min", type=float, default=defaults.retrain_every_s / 60)
    parser.add_argument("--window-hours", type=float, default=defaults.window_hours)
    parser.add_argument("--json", type=Path, default=None, help="Also write the JSON here.")
    args = parser.parse_args()
    scenario = DriftScenario(
        before=args.before,
        after=args.after,
        history_hours=args.history_hours,
        hours=args.hours,
        change_at_h=args.change_at,
        seed=args.seed,
        users_after=args.users_after,
        publish_every_s=args.publish_min * 60.0,
        retrain_every_s=args.retrain_min * 60.0,
        window_hours=args.window_hours,
    )
    quiet_mlflow()
    began = time.perf_counter()
    with redis_server() as url, tempfile.TemporaryDirectory(prefix="drift-") as home:
        client = redis.Redis.from_url(url)
        prefix = f"drift:{time.time_ns()}:"
        store = f"sqlite:///{home}/mlflow.db"
        tracking = TrackingConfig(
            tracking_uri=store,
            experiment="drift",
            model_name="drift",
            artifact_location=(Path(home) / "artifacts").as_uri(),
        )
        try:
            result = run_drift(
                scenario,
                log=EventLog(client, LogKeys(prefix)),
                registry=ModelRegistry(store, "drift"),
                tracking=tracking,
                progress=lambda line: print(line, file=sys.stderr, flush=True),
            )
        finally:
            for key in client.scan_iter(f"{prefix}*"):
                client.delete(key)
            client.close()
    report = result.to_dict() | {"wall_s": round(time.perf_counter() - began, 1)}
    emit(report, args.json)


if __name__ == "__main__":
    main()
