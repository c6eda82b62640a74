"""The instant rate per window of time: the service level as it is now, not since the start.

:class:`ConnectWindows` records the outcome of each counted connect (served at once or not,
exactly as the pool counts it for ``MetricsReport.instant_rate``: a connect the pool
answers ``ConnectResult.INSTANT`` is served at once, ``WAITING`` is not, ``DUPLICATE`` is
not a connect) and reports, for each window of :data:`WINDOWS_S`, the connects in it, those
served at once, the realised instant rate and the error-budget burn rate against a target:

    burn = (1 - instant rate) / (1 - target)

1 spends the budget (the share of connects allowed to wait) exactly as fast as it is
earned; 14.4 over an hour spends 2 % of a 30-day budget (docs/alerts.md).

Connects are counted in buckets of :data:`BUCKET_S` seconds of the ``now`` they are recorded
at, in a ring that spans the longest window: memory and work are bounded whatever the
traffic. A window of ``w`` seconds holds the current bucket (so far) and the ``w /
BUCKET_S`` whole buckets before it, so it covers between ``w`` and ``w + BUCKET_S`` seconds
(a 5 min window: the current minute and the five before it); a connect older than the
ring is dropped. Over a run shorter than the longest window, that window's counts are the
run's (``MetricsReport.connects`` and ``instant``).

Pure: ``now`` is handed to every call. ``to_dict``/``load`` round-trip the state, bucket by
bucket, by start time (so a saved state stays readable if the bucket width changes).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

WINDOWS_S: Final = (300, 1800, 3600, 21600)
"""The windows reported, in seconds, shortest first (labels "5m", "30m", "1h", "6h")."""
BUCKET_S: Final = 60
"""The width of a bucket; each window is a whole number of buckets."""
_RING: Final = max(WINDOWS_S) // BUCKET_S + 1
"""Buckets kept: the longest window's whole buckets and the current one."""
_NONE: Final = -(1 << 62)
"""The bucket number of a slot that holds none (below any time's)."""


def window_label(seconds: int) -> str:
    """A window's name, as Prometheus writes durations: 300 -> "5m", 3600 -> "1h"."""
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def burn_rate(instant_rate: float, target: float) -> float:
    """``(1 - instant_rate) / (1 - target)``: how fast the error budget is spent."""
    return (1.0 - instant_rate) / (1.0 - target)


@dataclass(frozen=True, slots=True)
class WindowLevel:
    """The connects of one window and what came of them."""

    window: str
    """Its label ("5m", "30m", "1h", "6h")."""
    seconds: int
    connects: int
    instant: int
    """Connects served at once."""
    instant_rate: float | None
    """``instant / connects``; None without connects."""
    burn_rate: float | None
    """``(1 - instant_rate) / (1 - target)``; None without connects."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "window": self.window,
            "seconds": self.seconds,
            "connects": self.connects,
            "instant": self.instant,
            "instant_rate": self.instant_rate,
            "burn_rate": self.burn_rate,
        }


@dataclass(frozen=True, slots=True)
class ServiceLevel:
    """Every window at one moment, against the target."""

    at: float
    target_instant_rate: float
    windows: tuple[WindowLevel, ...]
    """Shortest first, one per :data:`WINDOWS_S`."""

    def window(self, label: str) -> WindowLevel:
        for level in self.windows:
            if level.window == label:
                return level
        raise KeyError(label)

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "target_instant_rate": self.target_instant_rate,
            "windows": [level.to_dict() for level in self.windows],
        }


class ConnectWindows:
    def __init__(self) -> None:
        self._bucket: list[int] = []
        """The bucket number (``floor(t / BUCKET_S)``) each slot holds (``_NONE``: none)."""
        self._connects: list[int] = []
        self._instant: list[int] = []
        self._clear()

    def record(self, now: float, *, instant: bool) -> None:
        """One counted connect at ``now``; ``instant``: served at once. O(1)."""
        self._add(math.floor(now / BUCKET_S), 1, 1 if instant else 0)

    def service_level(self, now: float, target: float) -> ServiceLevel:
        """Each window ending at ``now``, with the burn rate against ``target`` (in (0, 1))."""
        if not 0.0 < target < 1.0:
            raise ValueError(f"the target instant rate must be in (0, 1), not {target}")
        current = math.floor(now / BUCKET_S)
        levels = []
        for seconds in WINDOWS_S:
            connects = instant = 0
            for number in range(current - seconds // BUCKET_S, current + 1):
                slot = number % _RING
                if self._bucket[slot] == number:
                    connects += self._connects[slot]
                    instant += self._instant[slot]
            rate = instant / connects if connects else None
            levels.append(
                WindowLevel(
                    window=window_label(seconds),
                    seconds=seconds,
                    connects=connects,
                    instant=instant,
                    instant_rate=rate,
                    burn_rate=None if rate is None else burn_rate(rate, target),
                )
            )
        return ServiceLevel(now, target, tuple(levels))

    # -- state -----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The buckets that hold connects, oldest first, as ``[start_s, connects, instant]``."""
        held = sorted(
            (number, self._connects[slot], self._instant[slot])
            for slot, number in enumerate(self._bucket)
            if self._connects[slot]
        )
        return {"buckets": [[number * BUCKET_S, c, i] for number, c, i in held]}

    def load(self, data: Mapping[str, Any] | None) -> None:
        """Replace the state with a saved one (None: a state saved before the windows
        existed, so none). Raises ValueError, saying what is wrong, on bad data."""
        self._clear()
        if data is None:
            return
        if not isinstance(data, Mapping) or not isinstance(data.get("buckets"), list):
            raise ValueError(f"saved connect windows need a list 'buckets': {data!r:.200}")
        for entry in data["buckets"]:
            if not (isinstance(entry, list | tuple) and len(entry) == 3):
                raise ValueError(
                    f"a saved connect bucket is [start_s, connects, instant], not {entry!r:.200}"
                )
            start, connects, instant = entry
            if not _number(start) or not math.isfinite(start) or start < 0:
                raise ValueError(f"a saved connect bucket starts at {start!r}: not a time")
            if not (_count(connects) and _count(instant) and instant <= connects):
                raise ValueError(
                    f"a saved connect bucket at {start} holds {connects!r} connects and "
                    f"{instant!r} instant: counts must be whole numbers, 0 <= instant <= connects"
                )
            self._add(math.floor(start / BUCKET_S), connects, instant)

    # -- internals -------------------------------------------------------------------------

    def _clear(self) -> None:
        self._bucket = [_NONE] * _RING
        self._connects = [0] * _RING
        self._instant = [0] * _RING

    def _add(self, number: int, connects: int, instant: int) -> None:
        slot = number % _RING
        held = self._bucket[slot]
        if held > number:  # the slot holds a later bucket: this one is older than the ring
            return
        if held < number:
            self._bucket[slot] = number
            self._connects[slot] = 0
            self._instant[slot] = 0
        self._connects[slot] += connects
        self._instant[slot] += instant


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
