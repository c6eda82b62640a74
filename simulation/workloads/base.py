"""What every workload shares: the default start, user kinds, simulated users and their ids."""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

DEFAULT_START: Final = 1732492800.0
"""2024-11-25 00:00:00 UTC, a Monday."""

DAY_S: Final = 86400


class UserKind(StrEnum):
    """How a simulated user behaves. Stable strings: analysis and reports group by them."""

    FAST = "fast"
    """Seed workload: connects soon after activity, short sessions."""
    SLOW = "slow"
    """Seed workload: connects later after activity, longer sessions."""
    ROUTINE = "routine"
    """Habits workload: works to a personal daily routine."""
    SPORADIC = "sporadic"
    """Habits workload: connects on some days, at no fixed time."""
    BROWSE = "browse"
    """Seed and habits workloads: shows activity but never connects."""
    SHIFT = "shift"
    """Shifts workload: works weekday shifts, long sessions split by a break."""
    IMPULSE = "impulse"
    """Shifts workload: short bursts of activity that often end in a short session."""
    WEEKLY = "weekly"
    """Shifts workload: connects on fixed weekdays only."""
    CASUAL = "casual"
    """Shifts workload: browses in bursts and rarely connects."""


@dataclass(frozen=True, slots=True)
class SimUser:
    """A simulated user: its id (as published) and its kind."""

    user_id: str
    kind: UserKind

    @property
    def connects(self) -> bool:
        return self.kind is not UserKind.BROWSE


def new_user_id(rng: random.Random) -> str:
    """A UUID4 string drawn from ``rng`` (deterministic for a seeded generator)."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def shuffled_kinds(
    rng: random.Random, counts: Sequence[tuple[UserKind, int]]
) -> list[tuple[str, UserKind]]:
    """``(user_id, kind)`` for a population of ``counts`` users of each kind: the ids drawn
    first (UUID4, in order), then the kinds shuffled among them."""
    ids = [new_user_id(rng) for _ in range(sum(count for _, count in counts))]
    kinds = [kind for kind, count in counts for _ in range(count)]
    rng.shuffle(kinds)
    return list(zip(ids, kinds, strict=True))


def check_window(hours: float, start: float) -> float:
    """The end of the window ``[start, start + hours h)``; raises ValueError when it is empty."""
    if not hours > 0:
        raise ValueError(f"hours must be > 0, not {hours!r}")
    if not math.isfinite(start) or start < 0:
        raise ValueError(f"start must be a finite unix time >= 0, not {start!r}")
    return start + hours * 3600.0
