"""The ceiling of the engine that ships: its scaler given a scorer that knows when each user
connects next.

Replays a generated workload through ``service.engine.Engine`` as the bench's ``heuristic``
policy does (``simulation.bench``: the same history, boots, config and runner), except that
each scored user's calibrated probability of a connect within each moment of the plan
(``service.plan``) is replaced by 1 when the scored events show the user's next connect by
then, and by 0 otherwise. No model of the events can know more about who connects when, so
what the engine still loses against the oracle belongs to the scaler and to what no one
knows in advance: how long a boot or a session will take, and the connects of users the
engine does not score.

Prints one JSON object: per target, the run's figures as the bench reports them.

    .venv/bin/python benchmarks/ceiling.py [--workload seed] [--hours 24] [--seed 1]
        [--boot uniform:60:180] [--targets 0.99,0.995] [--set plan_moments=1] [--json F]
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
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from benchmarks.common import emit
from features.events import Event, UserConnect
from features.online import OnlineFeatures
from models.heuristic import HeuristicScorer
from models.scoring import Floats
from service.config import ServiceConfig
from service.engine import Bools, Engine, Ints
from simulation.bench.model import bench_horizon
from simulation.bench.policy_run import SCORES, warm_features
from simulation.bench.request import BenchRequest, parse_override
from simulation.bench.setup import prepare
from simulation.nodes.boot import DEFAULT_BOOT_SPEC
from simulation.runner import run


def connect_times(events: Iterable[Event]) -> dict[str, list[float]]:
    """Each user's connect times, in order."""
    times: dict[str, list[float]] = {}
    for event in events:
        if isinstance(event, UserConnect):
            times.setdefault(event.user_id, []).append(event.ts)
    return times


class KnowsConnects(Engine):
    """The engine, its scores replaced by the knowledge of each user's next connect."""

    def __init__(
        self,
        connects: dict[str, list[float]],
        config: ServiceConfig,
        *,
        horizon_s: float,
        features: OnlineFeatures | None,
    ) -> None:
        super().__init__(HeuristicScorer(horizon_s=horizon_s), config, features=features)
        self.connects = connects

    def _score(self, now: float, moments: Floats) -> tuple[Ints, Floats, Bools, str | None, Floats]:
        rows, probability, from_model, version, _ = super()._score(now, moments)
        known = np.zeros((len(rows), len(moments)), dtype=np.float64)
        for j, row in enumerate(rows.tolist()):
            times = self.connects.get(self.users.ids[row], [])
            k = bisect.bisect_right(times, now)
            if k < len(times):
                known[j] = times[k] <= now + moments
        return rows, probability, from_model, version, known


def ceiling(request: BenchRequest, targets: Sequence[float]) -> list[dict[str, Any]]:
    """The ceiling run at each target, as the bench's figures."""
    setup = prepare(request)
    connects = connect_times(setup.scored.events)
    out = []
    for target in targets:
        config = replace(setup.config, target_instant_rate=target)
        engine = KnowsConnects(
            connects,
            config,
            horizon_s=bench_horizon(setup.boot, setup.seed, config).horizon_s,
            features=warm_features(setup),
        )
        scored = setup.scored
        result = run(
            scored.events,
            engine,
            start=scored.start,
            end=scored.end,
            boot=setup.boot,
            seed=setup.seed,
        ).to_dict()
        out.append({"target": target, **{name: result[name] for name in SCORES}})
        print(
            f"target {target}: {result['efficiency']:.4f} @ {result['instant_rate']:.4f}",
            file=sys.stderr,
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="seed")
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--users", type=int, default=None)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--boot", default=DEFAULT_BOOT_SPEC)
    parser.add_argument("--targets", default="0.99,0.995", help="comma-separated")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a ServiceConfig field, as the bench takes it",
    )
    parser.add_argument("--json", type=Path, default=None, help="Also write the JSON here.")
    args = parser.parse_args()
    overrides = dict(parse_override(text) for text in args.set)
    request = BenchRequest(
        workload=args.workload,
        hours=args.hours,
        users=args.users,
        seed=args.seed,
        boot=args.boot,
        overrides=tuple(overrides.items()),
    )
    targets = [float(t) for t in args.targets.split(",")]
    emit(
        {
            "benchmark": "ceiling",
            "workload": args.workload,
            "hours": args.hours,
            "users": args.users,
            "seed": args.seed,
            "boot": args.boot,
            "set": overrides,
            "runs": ceiling(request, targets),
        },
        args.json,
    )


if __name__ == "__main__":
    main()
