"""What a bench is asked: the workload or trace, the policies, the model's training history
and the service config (checked together, every problem reported at once)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Final

from models.model_types import DEFAULT_MODEL_TYPE, ModelType
from service.config import ServiceConfig
from simulation.bench.errors import BenchError
from simulation.nodes.boot import DEFAULT_BOOT_SPEC
from simulation.policies import DEFAULT_POLICIES, PolicyKind, PolicySpec, parse_policies

DEFAULT_MAX_NODES: Final = 500
"""The bench's node budget: large enough not to bind on either workload."""


def parse_override(text: str) -> tuple[str, float | int | bool]:
    """``KEY=VALUE`` for a field of ``ServiceConfig`` (``max_idle_s=60``), typed as the field."""
    key, sep, raw = text.partition("=")
    key, raw = key.strip(), raw.strip()
    kinds = {f.name: str(f.type) for f in fields(ServiceConfig)}
    if not sep or key not in kinds:
        raise BenchError(f"{text!r}: expected KEY=VALUE with KEY one of {', '.join(kinds)}")
    kind = kinds[key].removesuffix(" | None")  # an optional field takes its type's values
    try:
        if kind == "bool":
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValueError(raw)
            return key, raw.lower() in ("true", "1")
        if kind == "int":
            return key, int(raw)
        return key, float(raw)
    except ValueError as e:
        raise BenchError(f"{text!r}: {raw!r} is not a {kind}") from e


@dataclass(frozen=True)
class BenchRequest:
    workload: str = "seed"
    trace: Path | None = None
    hours: float | None = None
    """Scored hours (default: ``DEFAULT_HOURS`` of a workload, the whole of a trace)."""
    seed: int = 1
    users: int | None = None
    boot: str = DEFAULT_BOOT_SPEC
    policies: tuple[PolicySpec, ...] = field(
        default_factory=lambda: parse_policies(DEFAULT_POLICIES)
    )
    train_trace: Path | None = None
    train_fraction: float | None = None
    train_hours: float | None = None
    """Hours of the generated training history (default: the scored hours)."""
    history_hours: float | None = None
    """Hours of the same users' events before the scored window of a generated workload:
    the model trains on them and every engine's features are fed with them first."""
    target: float | None = None
    """Service-level target of ``heuristic`` / ``model`` without one of their own."""
    model_type: ModelType = DEFAULT_MODEL_TYPE
    """What the ``model`` policy serves: the classifier or a time-to-connect curve."""
    max_nodes: int = DEFAULT_MAX_NODES
    overrides: tuple[tuple[str, float | int | bool], ...] = ()
    """Other ``ServiceConfig`` fields for the engine and the baselines (:func:`parse_override`)."""

    def __post_init__(self) -> None:
        problems: list[str] = []
        try:
            self.config()
        except (TypeError, ValueError) as e:
            problems.append(f"bad service config: {e}")
        if self.hours is not None and not (math.isfinite(self.hours) and self.hours > 0):
            problems.append(f"hours must be > 0, not {self.hours}")
        if self.train_hours is not None and not (
            math.isfinite(self.train_hours) and self.train_hours > 0
        ):
            problems.append(f"train hours must be > 0, not {self.train_hours}")
        if self.history_hours is not None:
            if not (math.isfinite(self.history_hours) and self.history_hours > 0):
                problems.append(f"history hours must be > 0, not {self.history_hours}")
            others = (self.trace, self.train_trace, self.train_fraction, self.train_hours)
            if any(other is not None for other in others):
                problems.append(
                    "a history (--history) only applies to a generated workload, without a "
                    "trace, training trace, training fraction or training hours"
                )
        if self.train_fraction is not None:
            if self.trace is None:
                problems.append("a training fraction needs a trace (--trace) to split")
            if self.train_trace is not None:
                problems.append("give a training trace or a training fraction, not both")
            if not 0.0 < self.train_fraction < 1.0:
                problems.append(f"the training fraction must be in (0, 1): {self.train_fraction}")
        if (
            self.trace is not None
            and self.wants_model
            and self.train_trace is None
            and self.train_fraction is None
        ):
            problems.append(
                "the model policy on a trace needs a training trace or a training fraction "
                "(--train-trace or --train-fraction)"
            )
        if self.trace is not None and self.users is not None:
            problems.append("users only applies to a generated workload, not to a trace")
        if not self.policies:
            problems.append("no policy to run")
        if problems:
            raise BenchError("; ".join(problems))

    @property
    def wants_model(self) -> bool:
        return any(p.kind is PolicyKind.MODEL for p in self.policies)

    def config(self) -> ServiceConfig:
        settings: dict[str, Any] = {"max_nodes": self.max_nodes, **dict(self.overrides)}
        base = ServiceConfig(**settings)
        return base if self.target is None else replace(base, target_instant_rate=self.target)
