"""Node boot times, learned from what the nodes did: the time warm nodes must cover.

A node asked for now serves a connect only once it is ready, so the decision core must look
ahead by one decision interval plus a boot (the *lead time*), and a connect model's label
horizon is the same span. Boot times are not known in advance and they drift (images,
regions, the provider's own warm pools), so :class:`BootTimes` learns them: a bounded,
weighted sample of the latest boots, each older boot counting ``decay`` times less than the
next (so about ``half_life`` boots after a change the new boots weigh as much as all the old
ones), seeded with a prior (``prior_s``, weighing ``prior_weight`` boots, decaying like the
oldest boot). It answers

- a high quantile of the boot time (:meth:`BootTimes.quantile`); nodes still booting and
  older than it count as boots at least that long, so a boot time that jumps shows at once,
  not only when the first slow node is ready;
- the probability that a node booting for ``a`` seconds is ready within ``w`` more
  (:meth:`BootTimes.ready_within`): 0 for a node older than every boot seen.

:func:`boot_durations` reads the boots (``booting`` to ``ready``) from logged node events,
for training jobs choosing a label horizon; :func:`lead_time_s` is the one rule from a boot
quantile to the lead time. Pure: no clock, no I/O; times come with every call.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from features.events import Event, NodeStatus, NodeStatusChanged

Floats = npt.NDArray[np.float64]

DEFAULT_TICK_INTERVAL_S: Final = 10.0
"""How often the decision core sizes the pool: the first part of the lead time."""
DEFAULT_BOOT_QUANTILE: Final = 0.95
"""The boot-time quantile the lead time covers."""
DEFAULT_BOOT_PRIOR_S: Final = 30.0
"""Boot time assumed before any boot is seen (the seed node API's slowest boot, 29 s)."""
DEFAULT_BOOT_PRIOR_WEIGHT: Final = 4.0
"""How many boots the prior weighs."""
DEFAULT_BOOT_HALF_LIFE: Final = 32.0
"""Boots after which an older boot weighs half as much."""
DEFAULT_BOOT_CAPACITY: Final = 256
"""The most boots kept."""


def lead_time_s(boot_s: float, tick_interval_s: float) -> float:
    """The time warm nodes must cover: one decision interval plus a (high-quantile) boot."""
    return tick_interval_s + boot_s


class BootTimes:
    def __init__(
        self,
        *,
        prior_s: float = DEFAULT_BOOT_PRIOR_S,
        prior_weight: float = DEFAULT_BOOT_PRIOR_WEIGHT,
        half_life: float = DEFAULT_BOOT_HALF_LIFE,
        capacity: int = DEFAULT_BOOT_CAPACITY,
    ) -> None:
        problems = []
        if not (math.isfinite(prior_s) and prior_s >= 0):
            problems.append(f"boot prior must be a finite number of seconds >= 0, not {prior_s}")
        if not (math.isfinite(prior_weight) and prior_weight > 0):
            problems.append(f"boot prior weight must be > 0, not {prior_weight}")
        if not (math.isfinite(half_life) and half_life > 0):
            problems.append(f"boot half-life must be > 0 boots, not {half_life}")
        if capacity < 1:
            problems.append(f"boot capacity must be >= 1, not {capacity}")
        if problems:
            raise ValueError("; ".join(problems))
        self.prior_s = prior_s
        self.prior_weight = prior_weight
        self.half_life = half_life
        self.capacity = capacity
        self.decay = 0.5 ** (1.0 / half_life)
        self.seen = 0
        """Boots seen since the start (not bounded)."""
        self._boots: list[float] = []
        """The latest boots, oldest first (at most ``capacity``)."""

    # -- learning --------------------------------------------------------------------------

    def add(self, seconds: float) -> bool:
        """Record one boot; False (nothing recorded) when it is not a finite number >= 0."""
        if not (math.isfinite(seconds) and seconds >= 0):
            return False
        self._boots.append(float(seconds))
        if len(self._boots) > self.capacity:
            del self._boots[0]
        self.seen += 1
        return True

    # -- reading ---------------------------------------------------------------------------

    def quantile(self, q: float, booting_ages: Sequence[float] = ()) -> float:
        """The weighted ``q`` quantile of the boot time; nodes still booting for longer than
        it count as boots of their age so far (a lower bound)."""
        values, weights = self._sample()
        estimate = _weighted_quantile(values, weights, q)
        slow = [a for a in booting_ages if math.isfinite(a) and a > estimate]
        if not slow:
            return estimate
        values = np.concatenate((values, np.asarray(slow, dtype=np.float64)))
        weights = np.concatenate((weights, np.ones(len(slow), dtype=np.float64)))
        return _weighted_quantile(values, weights, q)

    def ready_within(self, ages_s: Sequence[float], within_s: float | Floats) -> Floats:
        """Per node booting for ``a`` seconds, P(ready within ``within_s`` more | not yet):
        one value per node, or ``(nodes, len(within_s))`` for an array of times."""
        ages = np.asarray(ages_s, dtype=np.float64)
        ends = _ends(ages, within_s)
        if not len(ages):
            return ends
        values, weights = self._sample()
        order = np.argsort(values, kind="stable")
        values, weights = values[order], weights[order]
        below = np.concatenate(([0.0], np.cumsum(weights)))  # weight of boots < values[i]
        total = below[-1]
        longer = total - below[np.searchsorted(values, ages, side="right")]  # boots > a
        longer = longer.reshape(ages.shape + (1,) * (ends.ndim - ages.ndim))
        by_then = total - below[np.searchsorted(values, ends, side="right")]
        probability: Floats = np.where(
            longer > 0, (longer - by_then) / np.where(longer > 0, longer, 1.0), 0.0
        )
        return probability

    def summary(self, q: float) -> dict[str, Any]:
        """What ``/v1/pool`` and a dashboard show."""
        values, weights = self._sample()
        return {
            "seen": self.seen,
            "kept": len(self._boots),
            "prior_s": self.prior_s,
            "prior_share": float(weights[0] / weights.sum()),
            "median_s": _weighted_quantile(values, weights, 0.5),
            "quantile": q,
            "quantile_s": _weighted_quantile(values, weights, q),
            "last_s": self._boots[-1] if self._boots else None,
        }

    # -- state -----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {"seen": self.seen, "boots": list(self._boots)}

    def load(self, data: dict[str, Any]) -> None:
        boots = [float(b) for b in data.get("boots", [])]
        if not all(math.isfinite(b) and b >= 0 for b in boots):
            raise ValueError("boot times must be finite numbers of seconds >= 0")
        self._boots = boots[-self.capacity :]
        self.seen = max(int(data.get("seen", len(boots))), len(self._boots))

    # -- internals -------------------------------------------------------------------------

    def _sample(self) -> tuple[Floats, Floats]:
        """The prior then the boots, oldest first, with their weights (the newest weighs 1)."""
        n = len(self._boots)
        ages = np.arange(n, -1, -1, dtype=np.float64)  # prior: n boots old, newest: 0
        weights = np.power(self.decay, ages)
        weights[0] *= self.prior_weight
        values = np.asarray([self.prior_s, *self._boots], dtype=np.float64)
        return values, weights


def _weighted_quantile(values: Floats, weights: Floats, q: float) -> float:
    """The smallest value whose cumulative weight reaches ``q`` of the total."""
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(weights[order])
    index = int(np.searchsorted(cumulative, q * cumulative[-1], side="left"))
    return float(values[order][min(index, len(values) - 1)])


def _ends(ages: Floats, within_s: float | Floats) -> Floats:
    """``ages + within_s``: one per age for a number, ``(ages, times)`` for an array."""
    within = np.asarray(within_s, dtype=np.float64)
    ends: Floats = ages[:, None] + within[None, :] if within.ndim else ages + within
    return ends


def boot_durations(events: Iterable[Event]) -> list[float]:
    """Each node's time from ``booting`` to ``ready`` in logged node events, in log order
    (nodes seen only once, or ready before booting, give none)."""
    booting: dict[str, float] = {}
    durations: list[float] = []
    for event in events:
        if not isinstance(event, NodeStatusChanged):
            continue
        if event.status is NodeStatus.BOOTING:
            booting.setdefault(event.node_id, event.ts)
        elif event.status is NodeStatus.READY:
            started = booting.pop(event.node_id, None)
            if started is not None and event.ts >= started:
                durations.append(event.ts - started)
        else:
            booting.pop(event.node_id, None)
    return durations
