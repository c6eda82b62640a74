"""The bench's result and its JSON: no wall times in it, so the same inputs give the same
JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from simulation.bench.policy_run import PolicyResult
from simulation.bench.request import BenchRequest
from simulation.bench.setup import BenchSetup
from simulation.bench.sweep import frontiers


@dataclass(frozen=True)
class BenchResult:
    request: BenchRequest
    setup: BenchSetup
    policies: tuple[PolicyResult, ...]
    sweep: tuple[PolicyResult, ...] = ()
    seconds: float = field(default=0.0, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The JSON of the bench: deterministic for the same inputs (no wall times)."""
        request = self.request
        data: dict[str, Any] = {
            "workload": "trace" if request.trace is not None else request.workload,
            "seed": request.seed,
            "hours": self.setup.scored.hours,
            "boot": str(self.setup.boot),
            "policies": [p.to_dict() for p in self.policies],
            "scored": self.setup.scored.describe(),
            "config": self.setup.config.to_dict(),
        }
        if self.setup.boot.changes:
            data["boot_schedule"] = self.setup.boot.describe()
        if self.setup.warmup is not None:
            data["history"] = self.setup.warmup.describe()
        if self.setup.model is not None:
            data["model"] = self.setup.model.info
        if self.sweep:
            data["sweep"] = [p.to_dict() for p in self.sweep]
            data["frontier"] = {
                family: [p.to_dict() for p in points]
                for family, points in frontiers(self.sweep).items()
            }
        return data
