"""Judging versions on live evidence (``models.live_evidence``): the challenger against the
champion for ``promote --live``, and the champion's health for ``retrain --when-degraded``.

**Live gates** (at the latest step both were logged at, so over the same window of the
same traffic): each version has at least ``min_settled`` settled predictions, and

    live_log_loss(challenger) <= live_log_loss(champion)                        # no slack
    live_brier(challenger)    <= live_brier(champion) * (1 + brier_tolerance)   # 0.01

and the evidence is at most ``max_age_s`` old (evidence from a service that stopped
scoring both says nothing about today's traffic). The log loss, the metric the models are
trained and calibrated on, gets no slack: the
challenger has to be at least as good on the traffic the champion serves. The Brier score,
dominated by the base rate when connects are rare, may be a little worse. A metric missing
at that step fails its gate. They come on top of the offline holdout gates
(``training.gates``), which still apply.

**Health.** The champion is healthy when its latest evidence says ``live_degraded`` 0, on
at least ``min_settled`` settled predictions, logged at most ``max_age_s`` ago; anything
else (no champion, no evidence, stale, too few, degraded) is a reason to retrain.

Pure: nothing here reads the registry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

from models.live_evidence import LIVE_BRIER, LIVE_LOG_LOSS, LiveEvidence
from training.defaults import (
    DEFAULT_LIVE_BRIER_TOLERANCE,
    DEFAULT_LIVE_MAX_AGE_S,
    DEFAULT_LIVE_MIN_SETTLED,
)
from training.gates import Gate, lower_gate

CHAMPION_N: Final = "live_n (champion)"
CHALLENGER_N: Final = "live_n (challenger)"
EVIDENCE_AGE: Final = "live evidence age (s)"


@dataclass(frozen=True, slots=True)
class LiveRule:
    min_settled: int = DEFAULT_LIVE_MIN_SETTLED
    brier_tolerance: float = DEFAULT_LIVE_BRIER_TOLERANCE
    max_age_s: float = DEFAULT_LIVE_MAX_AGE_S

    def __post_init__(self) -> None:
        if self.min_settled < 0 or self.brier_tolerance < 0 or self.max_age_s <= 0:
            raise ValueError("min_settled and brier_tolerance must be >= 0, max_age_s > 0")


DEFAULT_LIVE_RULE: Final = LiveRule()


def check_live_gates(
    champion: LiveEvidence,
    challenger: LiveEvidence,
    rule: LiveRule = DEFAULT_LIVE_RULE,
    *,
    now: float,
) -> tuple[Gate, ...]:
    """The live gates of the module docstring at ``now`` (a missing or NaN metric fails its
    gate)."""
    age = champion.age_s(now)

    def enough(name: str, evidence: LiveEvidence) -> Gate:
        return Gate(
            name,
            evidence.n,
            rule.min_settled,
            rule.min_settled,
            True,
            evidence.n >= rule.min_settled,
        )

    def lower(key: str, relative: float) -> Gate:
        c = challenger.metrics.get(key, math.nan)
        return lower_gate(key, c, champion.metrics.get(key, math.nan), relative)

    return (
        Gate(EVIDENCE_AGE, age, rule.max_age_s, rule.max_age_s, False, age <= rule.max_age_s),
        enough(CHAMPION_N, champion),
        enough(CHALLENGER_N, challenger),
        lower(LIVE_LOG_LOSS, 0.0),
        lower(LIVE_BRIER, rule.brier_tolerance),
    )


def describe_live_gate(gate: Gate, champion: str) -> str:
    verdict = "ok" if gate.passed else "FAILED"
    if gate.metric in (CHAMPION_N, CHALLENGER_N):
        return f"{gate.metric} {gate.candidate:.0f} >= {gate.limit:.0f}: {verdict}"
    if gate.metric == EVIDENCE_AGE:
        return f"{gate.metric} {gate.candidate:.0f} <= {gate.limit:.0f}: {verdict}"
    return (
        f"{gate.metric} {gate.candidate:.6g} <= {gate.limit:.6g} "
        f"(version {champion} {gate.reference:.6g}, live): {verdict}"
    )


@dataclass(frozen=True)
class HealthVerdict:
    """Whether the champion is healthy on its latest live evidence, and why (not)."""

    healthy: bool
    reason: str
    champion: str | None
    evidence: LiveEvidence | None
    age_s: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "reason": self.reason,
            "champion": self.champion,
            "evidence": None if self.evidence is None else self.evidence.to_dict(),
            "age_s": None if self.age_s is None else round(self.age_s, 3),
        }


def champion_health(
    champion: str | None,
    evidence: LiveEvidence | None,
    now: float,
    rule: LiveRule = DEFAULT_LIVE_RULE,
) -> HealthVerdict:
    """The champion's health (see the module docstring) at ``now``."""
    if champion is None:
        return HealthVerdict(False, "no champion", None, None, None)
    if evidence is None:
        return HealthVerdict(
            False, f"no live evidence for version {champion}", champion, None, None
        )
    age = evidence.age_s(now)

    def verdict(healthy: bool, reason: str) -> HealthVerdict:
        return HealthVerdict(healthy, reason, champion, evidence, age)

    if age > rule.max_age_s:
        return verdict(False, f"live evidence is stale: {age:.0f} s old (> {rule.max_age_s:.0f} s)")
    if evidence.degraded is None:
        return verdict(False, "the live evidence says nothing of live_degraded")
    if evidence.n < rule.min_settled:
        return verdict(
            False, f"{evidence.n:.0f} settled predictions (< {rule.min_settled}): health unknown"
        )
    if evidence.degraded:
        return verdict(False, f"version {champion} is degraded (live_degraded 1)")
    return verdict(True, f"version {champion} is healthy on {evidence.n:.0f} settled predictions")
