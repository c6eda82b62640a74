"""One policy replayed on the scored history, scored as DESIGN.md says.

The instant rate and waits come from the policy's ``service.pool.NodePool``, node time from
the simulated fleet, user time from the node API's own accounting
(:func:`simulation.runner.run`); the oracle (:func:`simulation.oracle.oracle`) is scored by
the same metric code.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from features.events import UserEvent
from features.online import OnlineFeatures
from models.heuristic import HeuristicScorer
from models.scoring import Scorer
from service.config import ServiceConfig
from service.engine import Engine
from simulation.bench.errors import BenchError
from simulation.bench.progress import Progress, reporting
from simulation.bench.setup import BenchSetup
from simulation.oracle import oracle
from simulation.policies import PolicyKind, PolicySpec, SeedRulePolicy, StaticPolicy
from simulation.runner import DecisionCore, run


@dataclass(frozen=True, slots=True)
class PolicyResult:
    policy: str
    connects: int
    instant_rate: float
    mean_wait_s: float
    p95_wait_s: float
    efficiency: float
    node_seconds: float
    user_seconds: float
    nodes_created: int
    nodes_per_connect: float
    idle_share: float
    """Share of node time in which a node served no user (``service.metrics``)."""
    knob: float | None = None
    """``static``: K; ``heuristic`` / ``model``: the service-level target; else None."""
    refused_needs: int | None = None
    """``heuristic`` / ``model``: needs the scaler refused (``service.scaler``); else None."""
    wall_s: float = field(default=0.0, compare=False)
    """Wall time of the run (not in the JSON: the JSON is deterministic)."""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        del data["wall_s"]
        return data


def run_policy(
    spec: PolicySpec, setup: BenchSetup, *, progress: Progress | None = None
) -> PolicyResult:
    """Replay ``setup.scored`` under one policy; scored as DESIGN.md says."""
    scored = setup.scored
    started = time.perf_counter()
    knob: float | None = None
    if spec.kind is PolicyKind.ORACLE:
        report = oracle(scored.events, end=scored.end, boot=setup.boot, seed=setup.seed)
        if progress is not None:
            progress(spec.name, scored.end - scored.start, scored.end - scored.start)
        return PolicyResult(
            policy=spec.name,
            connects=report.connects,
            instant_rate=report.instant_rate,
            mean_wait_s=report.mean_wait_s,
            p95_wait_s=report.p95_wait_s,
            efficiency=report.efficiency,
            node_seconds=report.node_seconds,
            user_seconds=report.user_seconds,
            nodes_created=report.nodes_created,
            nodes_per_connect=report.nodes_per_connect,
            idle_share=report.idle_share,
            wall_s=time.perf_counter() - started,
        )
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
        policy=spec.name,
        connects=result.connects,
        instant_rate=result.instant_rate,
        mean_wait_s=result.mean_wait_s,
        p95_wait_s=result.p95_wait_s,
        efficiency=result.efficiency,
        node_seconds=result.node_seconds,
        user_seconds=result.user_seconds,
        nodes_created=result.nodes_created,
        nodes_per_connect=result.nodes_per_connect,
        idle_share=result.idle_share,
        knob=knob,
        refused_needs=None if engine is None else sum(engine.refusals.values()),
        wall_s=time.perf_counter() - started,
    )


def _scorer(spec: PolicySpec, setup: BenchSetup, config: ServiceConfig) -> Scorer:
    if spec.kind is PolicyKind.HEURISTIC:
        return HeuristicScorer(horizon_s=config.lead_time_s)
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
