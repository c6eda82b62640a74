"""One policy replayed on the scored history, scored as docs/architecture.md says.

The instant rate and waits come from the policy's ``service.pool.NodePool``, node time from
the simulated fleet, user time from the node API's own accounting
(:func:`simulation.runner.run`); the oracle (:func:`simulation.oracle.oracle`) is scored by
the same metric code.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Final

from features.events import UserEvent
from features.online import OnlineFeatures
from models.heuristic import HeuristicScorer
from models.scoring import Scorer
from service.config import ServiceConfig
from service.core import DecisionCore
from service.engine import Engine
from simulation.bench.errors import BenchError
from simulation.bench.model import bench_horizon
from simulation.bench.progress import Progress, reporting
from simulation.bench.setup import BenchSetup
from simulation.oracle import oracle
from simulation.policies import PolicyKind, PolicySpec, SeedRulePolicy, StaticPolicy
from simulation.runner import RunResult, run

SCORES: Final = (
    "connects",
    "instant_rate",
    "mean_wait_s",
    "p95_wait_s",
    "efficiency",
    "node_seconds",
    "user_seconds",
    "nodes_created",
    "nodes_per_connect",
    "idle_share",
)
"""The figures of a run that the bench's JSON holds, in its order."""


@dataclass(frozen=True, slots=True)
class PolicyResult:
    """One policy's run, named, with its knob."""

    policy: str
    run: RunResult
    knob: float | None = None
    """``static``: K; ``heuristic`` / ``model``: the service-level target; else None."""
    refused_needs: int | None = None
    """``heuristic`` / ``model``: needs the scaler refused (``service.scaler``); else None."""
    wall_s: float = field(default=0.0, compare=False)
    """Wall time of the run (not in the JSON: the JSON is deterministic)."""

    def to_dict(self) -> dict[str, Any]:
        figures = self.run.to_dict()
        return {
            "policy": self.policy,
            **{name: figures[name] for name in SCORES},
            "knob": self.knob,
            "refused_needs": self.refused_needs,
        }


def run_policy(
    spec: PolicySpec, setup: BenchSetup, *, progress: Progress | None = None
) -> PolicyResult:
    """Replay ``setup.scored`` under one policy, scored as the module says."""
    scored = setup.scored
    started = time.perf_counter()
    knob: float | None = None
    if spec.kind is PolicyKind.ORACLE:
        result = _oracle_run(setup)
        if progress is not None:
            progress(spec.name, scored.end - scored.start, scored.end - scored.start)
        return PolicyResult(spec.name, result, wall_s=time.perf_counter() - started)
    core: DecisionCore
    engine: Engine | None = None
    if spec.kind is PolicyKind.STATIC:
        assert spec.k is not None
        core, knob = StaticPolicy(spec.k, setup.config), float(spec.k)
    elif spec.kind is PolicyKind.SEED_RULE:
        core = SeedRulePolicy(setup.config)
    else:
        config = setup.config
        if spec.target is not None:
            config = replace(config, target_instant_rate=spec.target)
        knob = config.target_instant_rate
        core = engine = Engine(_scorer(spec, setup, config), config, features=warm_features(setup))
    events: Iterable[UserEvent] = scored.events
    if progress is not None:
        events = reporting(scored, spec.name, progress)
    result = run(
        events,
        core,
        start=scored.start,
        end=scored.end,
        boot=setup.boot,
        seed=setup.seed,
    )
    return PolicyResult(
        spec.name,
        result,
        knob=knob,
        refused_needs=None if engine is None else sum(engine.refusals.values()),
        wall_s=time.perf_counter() - started,
    )


def _oracle_run(setup: BenchSetup) -> RunResult:
    """The oracle's metrics over the scored history, as a run: it feeds every event and
    never ticks; it keeps no count of the nodes alive at once."""
    scored = setup.scored
    report = oracle(scored.events, end=scored.end, boot=setup.boot, seed=setup.seed)
    return RunResult(
        connects=report.connects,
        instant_rate=report.instant_rate,
        mean_wait_s=report.mean_wait_s,
        p95_wait_s=report.p95_wait_s,
        efficiency=report.efficiency,
        node_seconds=report.node_seconds,
        user_seconds=report.user_seconds,
        nodes_created=report.nodes_created,
        busy_node_seconds=report.busy_node_seconds,
        instant=report.instant,
        waited=report.waited,
        abandoned=report.abandoned,
        events=len(scored.events),
        ticks=0,
        peak_nodes=None,
        start=scored.start,
        end=scored.end,
    )


def _scorer(spec: PolicySpec, setup: BenchSetup, config: ServiceConfig) -> Scorer:
    if spec.kind is PolicyKind.HEURISTIC:
        return HeuristicScorer(horizon_s=bench_horizon(setup.boot, setup.seed, config).horizon_s)
    if setup.model is None:
        raise BenchError("the model policy needs a trained model")
    return setup.model.scorer


def warm_features(setup: BenchSetup) -> OnlineFeatures | None:
    """Online features fed with the setup's warmup, for an engine policy (None without)."""
    if setup.warmup is None:
        return None
    features = OnlineFeatures()
    features.update_many(setup.warmup.events)
    return features
