"""Boot-time distributions, parsed from a spec string such as ``uniform:10:29``.

Pure: sampling takes the caller's ``random.Random``, so a seed fixes every boot time.

Specs (seconds):

- ``uniform:A:B``            whole seconds from A to B, both included (the seed's 10-29 s)
- ``fixed:S``                always S (may be fractional)
- ``normal:MEAN:SD:MIN:MAX`` a normal draw rounded to whole seconds and clipped to [MIN, MAX]

``str()`` of a parsed distribution gives its spec back in canonical form.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Final, Protocol

DEFAULT_BOOT_SPEC: Final = "uniform:10:29"
SPEC_FORMS: Final = "uniform:A:B, fixed:S or normal:MEAN:SD:MIN:MAX"


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
