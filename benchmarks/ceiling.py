"""The ceiling of the engine that ships: its scaler given a scorer that knows more than any
model of the events can.

Replays a generated workload through ``service.engine.Engine`` as the bench's ``heuristic``
policy does (``simulation.bench``: the same history, boots, config and runner), except that
each scored user's calibrated probability of a connect within each moment of the plan
(``service.plan``) is replaced by what the scorer knows (``--knows``):

- ``connects`` (the default): when each user connects next. The probability is 1 when the
  scored events show the user's next connect by then, 0 otherwise. No model of the events
  can know more about who connects when, so what the engine still loses against the oracle
  belongs to the scaler and to what no one knows in advance: how long a boot or a session
  will take, and the connects of users the engine does not score.
- ``checks`` (the ``seed`` workload only): the simulator's hidden state, but not its random
  draws. In ``seed`` a user connects a random wait (5-34 s fast, 15-74 s slow) after a check
  passes, a check no event shows. This scorer knows when each user's last check passed and
  the user's kind, so its probability is the share of the waits still possible that end by
  then; a user whose check has not passed counts 0. A model of the events knows less (when
  a check passes is not in them), so this is a tighter ceiling for any model than
  ``connects``, and one no model can reach either.

Prints one JSON object: per target, the run's figures as the bench reports them.

    .venv/bin/python benchmarks/ceiling.py [--workload seed] [--hours 24] [--seed 1]
        [--boot uniform:60:180] [--targets 0.99,0.995] [--knows connects|checks]
        [--set plan_moments=1] [--json F]
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
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from benchmarks.common import emit
from features.events import Event, UserActivity, UserConnect, UserDisconnect, UserEvent
from features.online import OnlineFeatures
from models.heuristic import HeuristicScorer
from models.scoring import Floats
from service.config import ServiceConfig
from service.engine import Bools, Engine, Ints
from simulation.bench.history import History
from simulation.bench.model import bench_horizon
from simulation.bench.policy_run import SCORES, warm_features
from simulation.bench.request import BenchRequest, parse_override
from simulation.bench.setup import prepare
from simulation.nodes.boot import DEFAULT_BOOT_SPEC
from simulation.runner import run
from simulation.workloads.base import UserKind
from simulation.workloads.seed import SEED_PARAMS, SeedParams, seed_population


def event_times(events: Iterable[Event], kind: type[UserEvent]) -> dict[str, list[float]]:
    """Each user's times of the events of ``kind``, in order."""
    times: dict[str, list[float]] = {}
    for event in events:
        if isinstance(event, kind):
            times.setdefault(event.user_id, []).append(event.ts)
    return times


Knowledge = Callable[[str, float, Floats], Floats]
"""A user's probability of a connect within each moment (seconds from ``now``)."""


@dataclass(frozen=True, slots=True)
class NextConnect:
    """Knows each user's next connect: 1 by the moments it falls in, 0 before."""

    connects: dict[str, list[float]]

    def __call__(self, user_id: str, now: float, moments: Floats) -> Floats:
        times = self.connects.get(user_id, [])
        k = bisect.bisect_right(times, now)
        known: Floats = np.zeros(len(moments), dtype=np.float64)
        if k < len(times):
            known[:] = times[k] <= now + moments
        return known


@dataclass(frozen=True, slots=True)
class SeedRules:
    """Knows the seed simulator's rules and each user's kind, and reads the events up to now:
    the exact probability of a connect by each moment, the simulator's draws unknown.

    A fast or slow user rests a uniform whole 60-239 s after a disconnect (from the start of
    the window: none), then checks every 5 s until it has had activity less than 30 s
    before; it connects a uniform whole wait after the check that passes (5-34 s fast,
    15-74 s slow). For each rest it might have drawn, the user's activities up to now say
    whether and when a check passed; a rest after which the connect would already have come
    is ruled out, the others weigh by the waits still possible. Checks after now pass with
    the chance of an activity in their window (activities fall on a user as a Poisson
    process of ``rate``: one every 0.3-1.3 s on a user drawn among all)."""

    start: float
    activities: dict[str, Floats]
    connects: dict[str, list[float]]
    disconnects: dict[str, list[float]]
    waits: dict[str, tuple[int, int]]
    params: SeedParams
    rate: float
    """Activities per second on one user."""

    def __call__(self, user_id: str, now: float, moments: Floats) -> Floats:
        known: Floats = np.zeros(len(moments), dtype=np.float64)
        if user_id not in self.waits:  # browse-only: never connects
            return known
        disconnects = self.disconnects.get(user_id, [])
        k = bisect.bisect_right(disconnects, now)
        base = disconnects[k - 1] if k else self.start
        connects = self.connects.get(user_id, [])
        c = bisect.bisect_right(connects, now)
        if c and connects[c - 1] >= base:  # connected since: not waiting to connect
            return known
        params = self.params
        low, high = params.rest_s if k else (0, 0)
        rests = np.arange(low, high + 1)
        activities = self.activities.get(user_id, np.zeros(0))
        activities = activities[: np.searchsorted(activities, now, side="right")]
        waits = np.arange(self.waits[user_id][0], self.waits[user_id][1] + 1, dtype=np.float64)
        step, recent = params.check_interval_s, params.recent_activity_s
        # every check offset from the base up to now; the first passing one at or after each
        passed = _first_passes(activities, base, now, low, step, recent)
        offsets = np.full(len(rests), np.inf)
        checked = rests - low < len(passed)
        offsets[checked] = passed[rests[checked] - low]
        done = np.isfinite(offsets)
        # rests whose check passed: the waits still possible, and those ending by each moment
        elapsed = now - (base + offsets[done])
        left = waits[None, :] > elapsed[:, None]
        by = waits[None, None, :] <= elapsed[:, None, None] + moments[None, :, None]
        within = (left[:, None, :] & by).mean(axis=2).sum(axis=0)
        alive = left.mean(axis=1).sum()
        # rests whose check has not passed: the next checks, each passing by chance
        pending = rests[~done].astype(np.float64)
        if len(pending):
            before = np.floor(np.maximum(math.floor(now - base) - pending, -1.0) / step)
            first = base + pending + step * (before + 1.0)
            last_seen = activities[-1] if len(activities) else -np.inf
            window = first - np.maximum(now, first - recent)
            p_first = np.where(last_seen > first - recent, 1.0, 1.0 - np.exp(-self.rate * window))
            again = 1.0 - math.exp(-self.rate * step)
            checks = int((moments[-1] - waits[0]) // step) + 2
            j = np.arange(checks, dtype=np.float64)
            at = first[:, None] + step * j[None, :]
            chance = np.where(
                j[None, :] == 0,
                p_first[:, None],
                (1.0 - p_first[:, None]) * (1.0 - again) ** np.maximum(j - 1, 0) * again,
            )
            ends = now + moments[None, None, :] - at[:, :, None]
            cdf = (waits[None, None, None, :] <= ends[..., None]).mean(axis=3)
            within = within + (chance[:, :, None] * cdf).sum(axis=(0, 1))
            alive += len(pending)
        if alive > 0:
            known[:] = np.clip(within / alive, 0.0, 1.0)
        return known


def _first_passes(
    activities: Floats, base: float, now: float, low: int, step: int, recent: int
) -> Floats:
    """For each whole offset ``s`` from ``low`` up to ``now - base``: the offset of the first
    check at ``base + s + step * i`` (i >= 0) up to now that passes (an activity in the
    ``recent`` seconds before it, or at it), inf when none does."""
    top = math.floor(now - base)
    if top < low:
        return np.zeros(0)
    offsets = np.arange(low, top + 1, dtype=np.float64)
    if not len(activities):
        return np.full(len(offsets), np.inf)
    checks = base + offsets
    last = np.searchsorted(activities, checks, side="right") - 1
    ok = (last >= 0) & (activities[np.maximum(last, 0)] > checks - recent)
    first = np.where(ok, offsets, np.inf)
    for r in range(step):  # the next passing check of the same chain, from the end back
        chain = first[r::step]
        first[r::step] = np.minimum.accumulate(chain[::-1])[::-1]
    return first


class Knowing(Engine):
    """The engine, its scores replaced by what ``knowledge`` says."""

    def __init__(
        self,
        knowledge: Knowledge,
        config: ServiceConfig,
        *,
        horizon_s: float,
        features: OnlineFeatures | None,
    ) -> None:
        super().__init__(HeuristicScorer(horizon_s=horizon_s), config, features=features)
        self.knowledge = knowledge

    def _score(self, now: float, moments: Floats) -> tuple[Ints, Floats, Bools, str | None, Floats]:
        rows, probability, from_model, version, _ = super()._score(now, moments)
        known = np.zeros((len(rows), len(moments)), dtype=np.float64)
        for j, row in enumerate(rows.tolist()):
            known[j] = self.knowledge(self.users.ids[row], now, moments)
        return rows, probability, from_model, version, known


def seed_rules(request: BenchRequest, scored: History) -> SeedRules:
    """The seed simulator's rules, each user's kind and the scored events, per user."""
    if request.workload != "seed" or request.history_hours or request.trace is not None:
        raise SystemExit("--knows rules: the seed workload only, without --history")
    population = seed_population(request.seed, request.users)
    ranges = {UserKind.FAST: SEED_PARAMS.fast_wait_s, UserKind.SLOW: SEED_PARAMS.slow_wait_s}
    low, high = SEED_PARAMS.activity_delay_ms
    return SeedRules(
        start=scored.start,
        activities={
            user: np.array(times)
            for user, times in event_times(scored.events, UserActivity).items()
        },
        connects=event_times(scored.events, UserConnect),
        disconnects=event_times(scored.events, UserDisconnect),
        waits={u.user_id: ranges[u.kind] for u in population if u.kind in ranges},
        params=SEED_PARAMS,
        rate=1000.0 / ((low + high) / 2.0 * len(population)),
    )


KNOWS = ("connects", "rules")


def ceiling(
    request: BenchRequest, targets: Sequence[float], knows: str = "connects"
) -> list[dict[str, Any]]:
    """The ceiling run at each target, as the bench's figures."""
    setup = prepare(request)
    knowledge: Knowledge = (
        NextConnect(event_times(setup.scored.events, UserConnect))
        if knows == "connects"
        else seed_rules(request, setup.scored)
    )
    out = []
    for target in targets:
        config = replace(setup.config, target_instant_rate=target)
        engine = Knowing(
            knowledge,
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
    parser.add_argument("--knows", choices=KNOWS, default="connects", help="see above")
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
            "knows": args.knows,
            "runs": ceiling(request, targets, args.knows),
        },
        args.json,
    )


if __name__ == "__main__":
    main()
