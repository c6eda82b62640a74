"""Boot-time distributions, parsed from a spec string such as ``uniform:10:29``.

Pure: sampling takes the caller's ``random.Random``, so a seed fixes every boot time.

Specs (seconds):

- ``uniform:A:B``            whole seconds from A to B, both included (the seed's 10-29 s)
- ``fixed:S``                always S (may be fractional)
- ``normal:MEAN:SD:MIN:MAX`` a normal draw rounded to whole seconds and clipped to [MIN, MAX]

``str()`` of a parsed distribution gives its spec back in canonical form.

A *schedule* (:func:`parse_boot_schedule`) changes the distribution over time:
``SPEC[,SPEC@HOURS...]``, e.g. ``uniform:10:29,uniform:60:180@12``: the first distribution
from the start (and before it), each later one from HOURS after the start (hours strictly
increasing, > 0). A node's boot time comes from the distribution in force when it is
created. A single spec is a schedule without changes, sampled exactly as its distribution.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from itertools import pairwise
from typing import Any, Final, Protocol

DEFAULT_BOOT_SPEC: Final = "uniform:10:29"
SPEC_FORMS: Final = "uniform:A:B, fixed:S or normal:MEAN:SD:MIN:MAX"
SCHEDULE_FORM: Final = "SPEC[,SPEC@HOURS...]"


class BootTime(Protocol):
    """A distribution of node boot times in seconds."""

    @property
    def low(self) -> float:
        """The shortest boot time it can produce."""
        ...

    @property
    def high(self) -> float:
        """The longest boot time it can produce."""
        ...

    def sample(self, rng: random.Random) -> float: ...


@dataclass(frozen=True, slots=True)
class UniformBoot:
    """Whole seconds from ``low`` to ``high``, both included, equally likely."""

    low: int
    high: int

    def __post_init__(self) -> None:
        if self.low < 0 or self.high < self.low:
            raise ValueError(f"uniform boot time needs 0 <= A <= B, got A={self.low} B={self.high}")

    def sample(self, rng: random.Random) -> float:
        return float(rng.randint(self.low, self.high))

    def __str__(self) -> str:
        return f"uniform:{self.low}:{self.high}"


@dataclass(frozen=True, slots=True)
class FixedBoot:
    """Always ``seconds``."""

    seconds: float

    def __post_init__(self) -> None:
        if not math.isfinite(self.seconds) or self.seconds < 0:
            raise ValueError(f"fixed boot time must be a finite number >= 0, got {self.seconds}")

    @property
    def low(self) -> float:
        return self.seconds

    @property
    def high(self) -> float:
        return self.seconds

    def sample(self, rng: random.Random) -> float:
        return self.seconds

    def __str__(self) -> str:
        return f"fixed:{_number(self.seconds)}"


@dataclass(frozen=True, slots=True)
class NormalBoot:
    """A normal draw (``mean``, ``sd``) rounded to whole seconds, clipped to [low, high]."""

    mean: float
    sd: float
    low: int
    high: int

    def __post_init__(self) -> None:
        if not (math.isfinite(self.mean) and math.isfinite(self.sd)) or self.sd < 0:
            raise ValueError(
                f"normal boot time needs a finite MEAN and SD >= 0, got {self.mean}, {self.sd}"
            )
        if self.low < 0 or self.high < self.low:
            raise ValueError(
                f"normal boot time needs 0 <= MIN <= MAX, got MIN={self.low} MAX={self.high}"
            )

    def sample(self, rng: random.Random) -> float:
        drawn = round(rng.gauss(self.mean, self.sd))
        return float(min(self.high, max(self.low, drawn)))

    def __str__(self) -> str:
        return f"normal:{_number(self.mean)}:{_number(self.sd)}:{self.low}:{self.high}"


def parse_boot_time(spec: str) -> UniformBoot | FixedBoot | NormalBoot:
    """The distribution a spec names; :class:`ValueError` saying what is wrong otherwise."""
    kind, _, rest = spec.strip().partition(":")
    kind = kind.lower()
    args = rest.split(":") if rest else []
    try:
        if kind == "uniform":
            low, high = _args(spec, args, 2)
            return UniformBoot(_whole(spec, "A", low), _whole(spec, "B", high))
        if kind == "fixed":
            (seconds,) = _args(spec, args, 1)
            return FixedBoot(_real(spec, "S", seconds))
        if kind == "normal":
            mean, sd, low, high = _args(spec, args, 4)
            return NormalBoot(
                _real(spec, "MEAN", mean),
                _real(spec, "SD", sd),
                _whole(spec, "MIN", low),
                _whole(spec, "MAX", high),
            )
    except ValueError as e:
        if str(e).startswith("boot time spec"):
            raise
        raise ValueError(f"boot time spec {spec!r}: {e}") from e
    raise ValueError(f"boot time spec {spec!r}: unknown kind {kind!r}; expected {SPEC_FORMS}")


@dataclass(frozen=True, slots=True)
class BootChange:
    """From ``hours`` after a schedule's start, boot times follow ``boot``."""

    hours: float
    boot: BootTime


@dataclass(frozen=True, slots=True)
class BootSchedule:
    """Boot-time distributions over time: ``first`` up to the first change, then each
    change's distribution from its hour on.

    ``start`` is the time of hour 0 on the caller's clock (the bench: the start of the
    scored window); times before it are under ``first``. ``str()`` gives the canonical spec
    (without ``start``).
    """

    first: BootTime
    changes: tuple[BootChange, ...] = ()
    start: float = 0.0

    def __post_init__(self) -> None:
        hours = [change.hours for change in self.changes]
        if not all(math.isfinite(h) for h in hours) or any(
            later <= earlier for earlier, later in pairwise([0.0, *hours])
        ):
            raise ValueError(f"change hours must be finite, > 0 and strictly increasing: {hours}")

    def starting_at(self, start: float) -> BootSchedule:
        """The same schedule with hour 0 at ``start``."""
        return replace(self, start=start)

    def change_time(self, change: BootChange) -> float:
        """When ``change`` takes over, on the clock of ``start``."""
        return self.start + change.hours * 3600.0

    def phases(self) -> tuple[tuple[float, BootTime], ...]:
        """``(from, distribution)`` in time order; the first from ``-inf``."""
        changes = ((self.change_time(change), change.boot) for change in self.changes)
        return ((-math.inf, self.first), *changes)

    def at(self, t: float) -> BootTime:
        """The distribution in force at time ``t`` (a change is in force from its time on)."""
        current = self.first
        for change in self.changes:
            if t < self.change_time(change):
                break
            current = change.boot
        return current

    def sample(self, rng: random.Random, t: float) -> float:
        """A boot time for a node created at ``t``."""
        return self.at(t).sample(rng)

    def describe(self) -> list[dict[str, Any]]:
        """Each distribution with the hour (and time) it takes over: the JSON form."""
        changes = (
            {"boot": str(c.boot), "from_hour": c.hours, "start": self.change_time(c)}
            for c in self.changes
        )
        return [{"boot": str(self.first), "from_hour": 0.0, "start": self.start}, *changes]

    def __str__(self) -> str:
        return ",".join([str(self.first), *(f"{c.boot}@{_number(c.hours)}" for c in self.changes)])


def parse_boot_schedule(spec: str) -> BootSchedule:
    """The schedule ``SPEC[,SPEC@HOURS...]`` names (hour 0 at time 0: see
    :meth:`BootSchedule.starting_at`); :class:`ValueError` naming the bad part otherwise.

    A spec without a comma is one distribution, with the errors of :func:`parse_boot_time`.
    """
    parts = [part.strip() for part in spec.split(",")]
    if len(parts) == 1 and "@" not in spec:
        return BootSchedule(parse_boot_time(spec))

    def bad(why: str) -> ValueError:
        return ValueError(f"boot schedule {spec.strip()!r}: {why}; form: {SCHEDULE_FORM}")

    def distribution(number: int, part: str, text: str) -> BootTime:
        try:
            return parse_boot_time(text)
        except ValueError as e:
            raise bad(f"part {number} {part!r}: {e}") from e

    head, *rest = parts
    if not head:
        raise bad("part 1 is empty")
    if "@" in head:
        raise bad(f"the first part {head!r} applies from the start: it takes no @HOURS")
    first = distribution(1, head, head)
    changes: list[BootChange] = []
    for number, part in enumerate(rest, start=2):
        if not part:
            raise bad(f"part {number} is empty")
        text, at, hours_text = part.partition("@")
        if not at:
            raise bad(f"part {number} {part!r} needs @HOURS (when it takes over)")
        boot = distribution(number, part, text)
        try:
            hours = float(hours_text)
        except ValueError as e:
            raise bad(
                f"part {number} {part!r}: HOURS={hours_text.strip()!r} is not a number"
            ) from e
        if not (math.isfinite(hours) and hours > 0):
            raise bad(f"part {number} {part!r}: HOURS must be a finite number > 0")
        if changes and hours <= changes[-1].hours:
            raise bad(
                f"part {number} {part!r}: hour {_number(hours)} is not after the previous "
                f"change's ({_number(changes[-1].hours)}); hours must increase"
            )
        changes.append(BootChange(hours, boot))
    return BootSchedule(first, tuple(changes))


def _args(spec: str, args: list[str], count: int) -> list[str]:
    if len(args) != count:
        raise ValueError(
            f"boot time spec {spec!r}: expected {count} number(s) after the kind, "
            f"got {len(args)}; forms: {SPEC_FORMS}"
        )
    return [a.strip() for a in args]


def _whole(spec: str, name: str, text: str) -> int:
    try:
        return int(text)
    except ValueError as e:
        raise ValueError(f"boot time spec {spec!r}: {name}={text!r} is not whole seconds") from e


def _real(spec: str, name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError as e:
        raise ValueError(f"boot time spec {spec!r}: {name}={text!r} is not a number") from e
    if not math.isfinite(value):
        raise ValueError(f"boot time spec {spec!r}: {name}={text!r} is not finite")
    return value


def _number(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)
