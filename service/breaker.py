"""A circuit breaker for calls to a remote API (the node provider).

Pure: no I/O and no clock; every call is handed ``now`` (any monotonic seconds).

- **closed**: calls go through; ``failure_threshold`` failures in a row open it;
- **open**: calls are refused at once (``allow`` is False) for ``reset_after_s``;
- **half-open**: after the cool-down, one call (the probe) goes through and the others
  are refused until its outcome is known: a success closes the breaker, a failure opens
  it again for another cool-down. A probe that never reports (its caller was cancelled)
  is given up after one cool-down, and the next call becomes the probe.

A caller asks :meth:`CircuitBreaker.allow` before each attempt and reports its outcome with
:meth:`success` or :meth:`failure`. An answer that says the API works (a 404 included) is a
success; a refused connection, a timeout or a 5xx is a failure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(slots=True)
class CircuitBreaker:
    failure_threshold: int = 5
    """Consecutive failures that open a closed breaker."""
    reset_after_s: float = 30.0
    """Cool-down: how long an open breaker refuses calls before it lets a probe through."""
    state: BreakerState = BreakerState.CLOSED
    failures: int = 0
    """Consecutive failures so far (reset by a success)."""
    opened_at: float | None = None
    opened: int = 0
    """Times the breaker opened (from closed or from half-open)."""
    rejected: int = 0
    """Calls refused while open or while a probe was out."""
    _probe_at: float | None = field(default=None, repr=False)
    """When the outstanding half-open probe went out (None: no probe out)."""

    def __post_init__(self) -> None:
        if self.failure_threshold < 1:
            raise ValueError(f"failure_threshold must be >= 1, not {self.failure_threshold}")
        if not self.reset_after_s >= 0:
            raise ValueError(f"reset_after_s must be >= 0, not {self.reset_after_s}")

    def allow(self, now: float) -> bool:
        """May a call go out at ``now``? (A True in half-open makes that call the probe.)"""
        if self.state is BreakerState.OPEN:
            assert self.opened_at is not None
            if now - self.opened_at < self.reset_after_s:
                self.rejected += 1
                return False
            self.state = BreakerState.HALF_OPEN
            self._probe_at = None
        if self.state is BreakerState.HALF_OPEN:
            if self._probe_at is not None and now - self._probe_at < self.reset_after_s:
                self.rejected += 1
                return False
            self._probe_at = now
        return True

    def success(self, now: float) -> None:
        self.state = BreakerState.CLOSED
        self.failures = 0
        self.opened_at = None
        self._probe_at = None

    def failure(self, now: float) -> None:
        self.failures += 1
        if self.state is BreakerState.HALF_OPEN or (
            self.state is BreakerState.CLOSED and self.failures >= self.failure_threshold
        ):
            self._open(now)

    def retry_in(self, now: float) -> float:
        """Seconds until an open breaker lets a probe through (0 when not open)."""
        if self.state is not BreakerState.OPEN or self.opened_at is None:
            return 0.0
        return max(0.0, self.opened_at + self.reset_after_s - now)

    def to_dict(self, now: float) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "failures": self.failures,
            "failure_threshold": self.failure_threshold,
            "reset_after_s": self.reset_after_s,
            "retry_in_s": self.retry_in(now),
            "opened": self.opened,
            "rejected": self.rejected,
        }

    def _open(self, now: float) -> None:
        self.state = BreakerState.OPEN
        self.opened_at = now
        self.opened += 1
        self._probe_at = None
