"""The sweep: each policy family over its knob (the static pool size, the service-level
target of the engine's policies), and the Pareto frontier of its points."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Final

from simulation.bench.policy_run import PolicyResult, run_policy
from simulation.bench.progress import Progress
from simulation.bench.setup import BenchSetup
from simulation.policies import PolicyKind, PolicySpec

STATIC_SWEEP_MAX: Final = 30
STATIC_SWEEP_STOP: Final = 0.9995
"""The static sweep grows K until the instant rate reaches this (or K reaches the max)."""
TARGET_SWEEP: Final = (0.9, 0.95, 0.97, 0.98, 0.99, 0.995, 0.998, 0.999)
"""Service-level targets the sweep gives the heuristic and the model."""


def run_sweep(
    policies: Sequence[PolicySpec],
    setup: BenchSetup,
    done: Sequence[PolicyResult] = (),
    *,
    targets: Sequence[float] = TARGET_SWEEP,
    static_max: int = STATIC_SWEEP_MAX,
    progress: Progress | None = None,
) -> tuple[PolicyResult, ...]:
    """Each policy family over its knob: ``static`` K = 0, 1, ... until the instant rate
    reaches ``STATIC_SWEEP_STOP`` (or ``static_max``); ``heuristic`` and ``model`` over
    ``targets``; ``seed-rule`` and ``oracle`` (no knob) once. Runs already ``done`` are
    reused."""
    known = {p.policy: p for p in done}
    kinds = list(dict.fromkeys(p.kind for p in policies))
    out: list[PolicyResult] = []

    def measured(spec: PolicySpec) -> PolicyResult:
        result = known.get(spec.name)
        if result is None:
            result = run_policy(spec, setup, progress=progress)
            known[spec.name] = result
        return result

    for kind in kinds:
        if kind is PolicyKind.STATIC:
            for k in range(static_max + 1):
                result = measured(PolicySpec(kind, k=k))
                out.append(result)
                if result.run.instant_rate >= STATIC_SWEEP_STOP:
                    break
        elif kind in (PolicyKind.HEURISTIC, PolicyKind.MODEL):
            default = setup.config.target_instant_rate
            for target in sorted({*targets, default}):
                spec = PolicySpec(kind, target=target)
                if target == default and kind.value in known:
                    result = replace(known[kind.value], policy=spec.name)
                else:
                    result = measured(spec)
                out.append(result)
        else:
            out.append(measured(PolicySpec(kind)))
    return tuple(out)


def family(result: PolicyResult) -> str:
    """``static:4`` -> ``static``; ``model:0.99`` -> ``model``."""
    return result.policy.split(":", 1)[0]


def frontiers(results: Iterable[PolicyResult]) -> dict[str, list[PolicyResult]]:
    """Per policy family, the points no other point of the family beats on both the instant
    rate and the efficiency, by increasing instant rate."""
    families: dict[str, list[PolicyResult]] = {}
    for result in results:
        families.setdefault(family(result), []).append(result)
    out: dict[str, list[PolicyResult]] = {}
    for name, points in families.items():
        ordered = sorted(points, key=lambda p: (-p.run.instant_rate, -p.run.efficiency))
        kept: list[PolicyResult] = []
        best = -math.inf
        for point in ordered:
            if point.run.efficiency > best:
                kept.append(point)
                best = point.run.efficiency
        out[name] = kept[::-1]
    return out


def best_at(results: Iterable[PolicyResult], name: str, instant_rate: float) -> PolicyResult | None:
    """The most efficient run of family ``name`` with at least ``instant_rate``."""
    eligible = [r for r in results if family(r) == name and r.run.instant_rate >= instant_rate]
    return max(eligible, key=lambda r: r.run.efficiency, default=None)
