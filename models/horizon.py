"""A connect model's label horizon, and how it was chosen.

The horizon is the span the service looks ahead: one decision interval plus a high quantile
of the boot time (:func:`features.boot_times.lead_time_s`). The service learns that quantile
from its nodes (:class:`features.boot_times.BootTimes`) and converts every score to its lead
time, so a model trained on the same span needs the least conversion. A training job given
no horizon applies the service's rule to the boots logged over its training range
(:func:`horizon_from_boots`); with no boot to go by it keeps ``DEFAULT_HORIZON_S``. An
explicit horizon always wins (:func:`choose_horizon`).

Pure: boot durations in, a :class:`HorizonChoice` out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from features.boot_times import (
    DEFAULT_BOOT_QUANTILE,
    DEFAULT_TICK_INTERVAL_S,
    BootTimes,
    lead_time_s,
)
from models.defaults import DEFAULT_HORIZON_S


class HorizonSource(StrEnum):
    GIVEN = "given"
    """Set by the caller (``--horizon``, ``PROVISIONER_HORIZON_S``, a dataset spec)."""
    BOOTS = "boots"
    """The service's rule applied to the boots seen."""
    DEFAULT = "default"
    """No boot to go by: ``DEFAULT_HORIZON_S``."""


@dataclass(frozen=True, slots=True)
class HorizonChoice:
    horizon_s: float
    source: HorizonSource
    boots: int | None = None
    """Boots the choice looked at (None: a given horizon looks at none)."""
    boot_quantile: float | None = None
    """The boot-time quantile the rule covers (None for a given horizon)."""
    boot_s: float | None = None
    """That quantile of the boots, seconds (only when chosen from boots)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "horizon_s": self.horizon_s,
            "source": self.source.value,
            "boots": self.boots,
            "boot_quantile": self.boot_quantile,
            "boot_s": self.boot_s,
        }

    def describe(self) -> str:
        """One line for people: the horizon and where it came from."""
        if self.source is HorizonSource.BOOTS:
            return (
                f"label horizon {self.horizon_s:g} s: a {DEFAULT_TICK_INTERVAL_S:g} s tick plus "
                f"the {self.boot_quantile:g} quantile ({self.boot_s:g} s) of {self.boots} "
                "node boot(s) in the range"
            )
        if self.source is HorizonSource.DEFAULT:
            return (
                f"label horizon {self.horizon_s:g} s (the default): no node boots "
                "(booting then ready) in the range to choose it from"
            )
        return f"label horizon {self.horizon_s:g} s (given)"


def horizon_from_boots(durations: Sequence[float]) -> HorizonChoice:
    """The service's lead time for these boots (oldest first), or the default with none.

    Exactly the service's rule: a :class:`BootTimes` with its defaults (prior, half-life,
    capacity) fed the boots in order, its ``DEFAULT_BOOT_QUANTILE`` quantile plus one
    ``DEFAULT_TICK_INTERVAL_S`` decision interval. Durations that are not finite seconds
    >= 0 are not counted, as the service would not count them.
    """
    times = BootTimes()
    boots = sum(times.add(seconds) for seconds in durations)
    if not boots:
        return HorizonChoice(
            DEFAULT_HORIZON_S, HorizonSource.DEFAULT, boots=0, boot_quantile=DEFAULT_BOOT_QUANTILE
        )
    boot_s = times.quantile(DEFAULT_BOOT_QUANTILE)
    return HorizonChoice(
        lead_time_s(boot_s, DEFAULT_TICK_INTERVAL_S),
        HorizonSource.BOOTS,
        boots=boots,
        boot_quantile=DEFAULT_BOOT_QUANTILE,
        boot_s=boot_s,
    )


def choose_horizon(given_s: float | None, durations: Sequence[float]) -> HorizonChoice:
    """``given_s`` when set, else :func:`horizon_from_boots` of ``durations``."""
    if given_s is not None:
        return HorizonChoice(given_s, HorizonSource.GIVEN)
    return horizon_from_boots(durations)
