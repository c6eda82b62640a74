"""Clocks for the shells. Pure code never reads time: it is handed ``now``."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol


class Clock(Protocol):
    """Seconds since the Unix epoch, possibly accelerated."""

    def now(self) -> float: ...

    def wall_delay(self, seconds: float) -> float:
        """Wall-clock seconds that correspond to ``seconds`` on this clock."""
        ...


@dataclass(frozen=True, slots=True)
class ScaledClock:
    """``anchor + (wall - anchor) * speed``: the wall clock when ``speed`` is 1.

    Processes that share ``anchor`` and ``speed`` agree on the time, so an accelerated
    demo (simulator, node API and service in separate processes) stays consistent.
    """

    anchor: float = 0.0
    speed: float = 1.0

    def now(self) -> float:
        wall = time.time()
        return self.anchor + (wall - self.anchor) * self.speed

    def wall_delay(self, seconds: float) -> float:
        return seconds / self.speed


WALL_CLOCK = ScaledClock()
