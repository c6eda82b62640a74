"""The service level as feedback: the realised instant rate steers the target the scaler sizes for.

The scaler sizes the pool so that, *by its demand model*, ``target`` of the connects find a
warm node. The model can be wrong (an uncalibrated scorer, a population it never saw, boots
slower than it assumes); then the realised rate misses the target and nothing in the open
loop notices. This closes the loop with an integral controller on the connects' outcomes:
each connect moves the log of the shortfall the scaler allows,

    u += gain * (served_at_once - target)        (served_at_once: 1 or 0)

so a connect that waited tightens the allowance by ``gain * target`` and one served at once
loosens it by ``gain * (1 - target)``; ``u`` stands still exactly when the realised rate is
the target, whatever the workload, the scorer's calibration or the boot times. The scaler
sizes for ``target_in_force = 1 - (1 - target) * exp(u)``.

Bounded and without wind-up: ``u`` stays within ``[-ln TIGHTEN_LIMIT, ln RELAX_LIMIT]``, and a
connect that waited while the pool was held at the node budget (the scaler could not have
done more) does not tighten it. The last ``window`` connects' realised rate is reported with
the target in force and why (``/v1/pool``). State is plain data (``to_dict`` / ``load``).
Pure: no clock, no I/O.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any, Final

DEFAULT_FEEDBACK_GAIN: Final = 0.3
"""How far one connect moves the log of the allowed shortfall (per unit of error)."""
DEFAULT_FEEDBACK_WINDOW: Final = 200
"""Recent connects whose realised rate is reported."""
TIGHTEN_LIMIT: Final = 100.0
"""The allowed shortfall is never cut below 1/100 of the target's (0.99 -> 0.9999)."""
RELAX_LIMIT: Final = 3.0
"""... nor raised above 3 times it (0.99 -> 0.97)."""


@dataclass(frozen=True, slots=True)
class FeedbackReport:
    """What ``/v1/pool`` shows of the feedback."""

    target: float
    """The configured target instant rate."""
    target_in_force: float
    """The target the scaler sizes for now."""
    window_connects: int
    window_instant: int
    recent_rate: float | None
    """Instant share of the last ``window_connects`` connects (None before the first)."""
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "target_in_force": self.target_in_force,
            "window_connects": self.window_connects,
            "window_instant": self.window_instant,
            "recent_rate": self.recent_rate,
            "reason": self.reason,
        }


class ServiceLevelFeedback:
    def __init__(
        self,
        target: float,
        *,
        gain: float = DEFAULT_FEEDBACK_GAIN,
        window: int = DEFAULT_FEEDBACK_WINDOW,
    ) -> None:
        if not 0.0 < target < 1.0:
            raise ValueError(f"the target instant rate must be in (0, 1), not {target}")
        if not (math.isfinite(gain) and gain >= 0):
            raise ValueError(f"the feedback gain must be a finite number >= 0, not {gain}")
        if window < 1:
            raise ValueError(f"the feedback window must hold >= 1 connect, not {window}")
        self.target = target
        self.gain = gain
        self.log_scale = 0.0
        """``u``: the log of the allowed shortfall's scale (0: the target as configured)."""
        self._recent: deque[bool] = deque(maxlen=window)

    def connect(self, served_at_once: bool, *, at_budget: bool = False) -> None:
        """One connect's outcome; ``at_budget``: the pool was held at the node budget."""
        self._recent.append(served_at_once)
        if not served_at_once and at_budget:
            return
        error = (1.0 if served_at_once else 0.0) - self.target
        self.log_scale = _bounded(self.log_scale + self.gain * error)

    def target_in_force(self) -> float:
        return 1.0 - (1.0 - self.target) * math.exp(self.log_scale)

    def report(self) -> FeedbackReport:
        recent = self._recent
        instant = sum(recent)
        rate = instant / len(recent) if recent else None
        in_force = self.target_in_force()
        if rate is None:
            reason = f"no connect yet: sizing for the target {self.target:g}"
        else:
            side = "below" if rate < self.target else "at or above"
            reason = (
                f"realised {rate:.4f} over the last {len(recent)} connects, {side} the target "
                f"{self.target:g}: sizing for {in_force:.4f}"
            )
        return FeedbackReport(self.target, in_force, len(recent), instant, rate, reason)

    def to_dict(self) -> dict[str, Any]:
        return {"log_scale": self.log_scale, "recent": [int(b) for b in self._recent]}

    def load(self, data: dict[str, Any]) -> None:
        log_scale = float(data.get("log_scale", 0.0))
        if not math.isfinite(log_scale):
            raise ValueError(f"the feedback's log scale must be finite, not {log_scale}")
        self.log_scale = _bounded(log_scale)
        self._recent.clear()
        self._recent.extend(bool(b) for b in data.get("recent", []))


def _bounded(log_scale: float) -> float:
    """``log_scale`` within ``[-ln TIGHTEN_LIMIT, ln RELAX_LIMIT]``."""
    return min(math.log(RELAX_LIMIT), max(-math.log(TIGHTEN_LIMIT), log_scale))
