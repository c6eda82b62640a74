"""The waits of connects that found no ready node, in bounded space: a log-bucketed histogram.

A wait ``w`` above ``MIN_WAIT_S`` falls in bucket ``ceil(log_gamma(w))`` with
``gamma = (1 + a) / (1 - a)`` for the relative accuracy ``a`` (1 %): every quantile it
reports is within 1 % of a wait that was seen at that rank (the DDSketch mapping). Waits up
to ``MIN_WAIT_S`` count as zero. The mean is exact (a running sum). Its size is the number
of distinct buckets used, about 920 at most from a millisecond to a day, whatever the
uptime; its state is plain JSON, so a restored service reports the same figures.

Why not the ``ddsketch`` package: its serialisation (protobuf) drops the sum, and what it
restores is no longer the bounded store it saved; the service's state must round-trip
exactly, in JSON, and these few lines are all of the sketch it needs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

RELATIVE_ACCURACY: Final = 0.01
MIN_WAIT_S: Final = 1e-3
"""Waits at most this long count as zero."""
_GAMMA: Final = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
_LOG_GAMMA: Final = math.log(_GAMMA)


class WaitHistogram:
    def __init__(self) -> None:
        self.count = 0
        self.total_s = 0.0
        self.zero = 0
        self._buckets: dict[int, int] = {}

    def __len__(self) -> int:
        return self.count

    def add(self, wait_s: float) -> None:
        if not math.isfinite(wait_s):
            raise ValueError(f"a wait must be a finite number of seconds, not {wait_s!r}")
        wait_s = max(0.0, wait_s)
        self.count += 1
        self.total_s += wait_s
        if wait_s <= MIN_WAIT_S:
            self.zero += 1
            return
        key = math.ceil(math.log(wait_s) / _LOG_GAMMA)
        self._buckets[key] = self._buckets.get(key, 0) + 1

    @property
    def buckets(self) -> int:
        """Buckets in use (the histogram's size)."""
        return len(self._buckets)

    def mean(self) -> float:
        """Exact; 0.0 without waits."""
        return self.total_s / self.count if self.count else 0.0

    def quantile(self, q: float) -> float:
        """The wait at rank ``ceil(q * count)`` (within 1 %); 0.0 without waits."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"a quantile must be in [0, 1], not {q}")
        if self.count == 0:
            return 0.0
        rank = max(1, math.ceil(q * self.count))
        seen = self.zero
        if rank <= seen:
            return 0.0
        for key in sorted(self._buckets):
            seen += self._buckets[key]
            if rank <= seen:
                # the middle of (gamma^(k-1), gamma^k] in relative terms
                return 2.0 * _GAMMA**key / (_GAMMA + 1.0)
        raise AssertionError("bucket counts do not add up to the count")

    # -- state -----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "total_s": self.total_s,
            "zero": self.zero,
            "buckets": {str(key): n for key, n in sorted(self._buckets.items())},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WaitHistogram:
        histogram = cls()
        histogram.count = int(data["count"])
        histogram.total_s = float(data["total_s"])
        histogram.zero = int(data["zero"])
        histogram._buckets = {int(k): int(n) for k, n in dict(data["buckets"]).items()}
        counts = [histogram.zero, *histogram._buckets.values()]
        if not math.isfinite(histogram.total_s) or histogram.total_s < 0:
            raise ValueError(f"the waits' total must be finite and >= 0, not {histogram.total_s}")
        if min(counts) < 0 or sum(counts) != histogram.count:
            raise ValueError("the wait histogram's bucket counts do not add up to its count")
        return histogram

    @classmethod
    def of(cls, waits: list[float]) -> WaitHistogram:
        """A histogram of ``waits`` (state saved before waits were bucketed)."""
        histogram = cls()
        for wait in waits:
            histogram.add(float(wait))
        return histogram
