"""The demand over the lead time as a distribution, and the warm count a service level needs.

Each scored user connects within the lead time with its probability, independently: the
demand ``D`` is a sum of Bernoullis (a Poisson-binomial), plus a Poisson baseline of
connects nobody scored. It is computed exactly over the ``exact`` most likely users and
with a Poisson for the many small rest (Le Cam: the error is at most twice the sum of the
squared small probabilities), truncated to the warm counts that can matter.

Nodes freed by disconnects within the lead time are supply too: ``F`` is their number (a
Poisson-binomial of the given free probabilities), and the connects that find no node are
``(D - F - s)+``. A node freed late in the window only serves the connects after it: the
plan (``service.plan``) asks for the demand at several moments, each with the frees by then.

With ``s`` warm nodes, the expected shortfall is ``E[(D - F - s)+]``: the connects expected
to find no warm node. :meth:`Demand.need` is the warm count at which that shortfall is at most
``1 - target`` of the expected demand, so that the expected share of instant connects is the
target (a fill rate); it is the quantile of ``D`` at which the target is met, interpolated
between whole nodes so that the scaler's thresholds act on fractions of a node.

**Vanishing demand.** When almost nothing is expected (at night, after the online estimates
have decayed for days), ``E[D]`` can be 1e-12 or less, and 1 % of it is below the rounding
error of the distribution: no warm count would seem to reach the target, and the need would
run to the end of the support. Two rules keep the need sound there: no probability is
dropped from the distribution (the tiny ones join the Poisson part, so its mass is the
mean's), and a shortfall below :data:`NEGLIGIBLE_SHORTFALL` counts as none.

**What a demand can support.** For any ``s > E[D]``, ``(x - s)+ <= (x - E[D])^2 / (4 (s -
E[D]))`` for every ``x``, so ``E[(D - s)+] <= Var(D) / (4 (s - E[D]))``; frees only lower the
shortfall. Hence no sound need exceeds :meth:`Demand.bound`, ``E[D] + Var(D) / (4 a)`` with
``a`` the allowed shortfall (at most ``E[D] + 1 / (4 (1 - target))``, as ``Var(D) <= E[D]``
for a sum of Bernoullis and a Poisson). The scaler refuses a need above it
(``service.scaler``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]

_NEGLIGIBLE = 1e-12
"""Probabilities below this are summed into the Poisson part, not computed exactly."""
NEGLIGIBLE_SHORTFALL: Final = 1e-9
"""Expected connects per lead time below which a shortfall counts as none."""


@dataclass(frozen=True, slots=True)
class Demand:
    mean: float
    """``E[D]``: the connects expected."""
    tail: Floats
    """``tail[k] = P(D - F > k)`` for ``k = 0 .. support - 1``."""
    uncovered: float = -1.0
    """``E[(D - F)+]`` (the shortfall with no warm node); defaults to ``mean`` (no frees)."""
    frees: float = 0.0
    """``E[F]``: nodes expected to be freed in time to serve a connect."""
    variance: float = -1.0
    """``Var(D)``; defaults to ``mean`` (its largest value for a sum of Bernoullis and a
    Poisson)."""

    def __post_init__(self) -> None:
        if self.uncovered < 0:
            object.__setattr__(self, "uncovered", self.mean)
        if self.variance < 0:
            object.__setattr__(self, "variance", self.mean)

    @property
    def support(self) -> int:
        return len(self.tail)

    def shortfall(self, warm: int) -> float:
        """``E[(D - F - warm)+]``, for ``0 <= warm <= support``."""
        warm = min(max(warm, 0), self.support)
        return max(0.0, self.uncovered - float(self.tail[:warm].sum()))

    def shortfalls(self) -> Floats:
        """``E[(D - F - s)+]`` for ``s = 0 .. support``."""
        es = self.uncovered - np.concatenate(([0.0], np.cumsum(self.tail)))
        clipped: Floats = np.maximum(es, 0.0)
        return clipped

    def allowed(self, target: float) -> float:
        """The expected shortfall a ``target`` allows: ``(1 - target) * E[D]``, and never
        less than :data:`NEGLIGIBLE_SHORTFALL`."""
        return max((1.0 - target) * self.mean, NEGLIGIBLE_SHORTFALL)

    def need(self, target: float) -> float:
        """The (fractional) warm count whose expected shortfall is :meth:`allowed`.

        0 when no demand is expected; ``support`` when even that many do not reach the target.
        """
        if self.mean <= 0.0:
            return 0.0
        allowed = self.allowed(target)
        es = self.shortfalls()
        reached = np.flatnonzero(es <= allowed)
        if len(reached) == 0:
            return float(self.support)
        s = int(reached[0])
        if s == 0:
            return 0.0
        above, below = float(es[s - 1]), float(es[s])
        step = above - below
        return s - 1 + ((above - allowed) / step if step > 0 else 1.0)

    def bound(self, target: float) -> float:
        """The largest need this demand can support (see the module doc)."""
        if self.mean <= 0.0:
            return 0.0
        return self.mean + self.variance / (4.0 * self.allowed(target))

    def summary(self, head: int = 8) -> dict[str, Any]:
        """What a log line says of the distribution: moments, frees and the head of the tail."""
        return {
            "mean": self.mean,
            "variance": self.variance,
            "frees": self.frees,
            "uncovered": self.uncovered,
            "support": self.support,
            "tail_head": [float(t) for t in self.tail[:head]],
        }

    def quantile(self, level: float) -> int:
        """The smallest ``s`` with ``P(D <= s) >= level`` (``support`` if none below it)."""
        reached = np.flatnonzero(self.tail <= 1.0 - level)
        return int(reached[0]) if len(reached) else self.support


def demand(
    probabilities: Floats,
    *,
    baseline: float = 0.0,
    support: int,
    exact: int = 256,
    frees: Floats | None = None,
) -> Demand:
    """The distribution of the number of connects, net of the nodes freed meanwhile.

    ``probabilities`` are per user (NaN counts as 0, values are clipped to [0, 1]);
    ``baseline`` is the expected number of other connects (Poisson); ``support`` bounds the
    warm counts of interest (the tail is exact below it); ``frees`` are the probabilities
    that busy nodes are freed in time to serve a connect.
    """
    if support < 1:
        raise ValueError(f"support must be >= 1, not {support}")
    p = _probabilities(probabilities)
    baseline = max(0.0, float(baseline)) if math.isfinite(baseline) else 0.0
    mean = float(p.sum()) + baseline
    variance = float((p * (1.0 - p)).sum()) + baseline
    f = _probabilities(frees if frees is not None else np.zeros(0))
    if len(f):
        free_pmf = _pmf(f, 0.0, exact, min(len(f), support) + 1)
        free_pmf[-1] += max(0.0, 1.0 - float(free_pmf.sum()))  # more frees than that: as many
    else:
        free_pmf = _NO_FREES  # F = 0 for certain: the net is the connects' pmf itself
    width = support + len(free_pmf)  # connects beyond this cannot matter, net of frees
    connect_pmf = _pmf(p, baseline, exact, width + 1)
    # index i: D - F = i - (len(free_pmf) - 1)
    net = np.convolve(connect_pmf, free_pmf[::-1]) if len(f) else connect_pmf
    zero = len(free_pmf) - 1
    positive = net[zero + 1 :]
    tail = np.maximum(1.0 - float(net[: zero + 1].sum()) - np.cumsum(positive[: support - 1]), 0.0)
    tail = np.concatenate(([max(0.0, 1.0 - float(net[: zero + 1].sum()))], tail))[:support]
    uncovered = float(np.dot(np.arange(1, len(positive) + 1), positive))
    if not len(f):
        uncovered = mean  # exact, whatever the truncation
    return Demand(
        mean=mean, tail=tail, uncovered=uncovered, frees=float(f.sum()), variance=variance
    )


_NO_FREES: Final = np.ones(1, dtype=np.float64)
_NO_FREES.flags.writeable = False


def _probabilities(values: Floats) -> Floats:
    clipped: Floats = np.clip(
        np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0), 0.0, 1.0
    )
    return clipped


def _pmf(p: Floats, baseline: float, exact: int, length: int) -> Floats:
    """The pmf, over 0 .. length - 1, of a Poisson-binomial of ``p`` plus a Poisson
    ``baseline``: exact over the ``exact`` largest probabilities, Poisson for the rest (and
    for the negligible ones, whose mass is kept)."""
    if len(p) > exact:
        top = np.argpartition(p, len(p) - exact)[len(p) - exact :]
        exact_p = p[top]
        rest = max(0.0, float(p.sum()) - float(exact_p.sum())) + baseline
    else:
        exact_p, rest = p, baseline
    negligible = exact_p <= _NEGLIGIBLE
    rest += float(exact_p[negligible].sum())
    exact_pmf = _poisson_binomial_pmf(exact_p[~negligible])
    pmf: Floats = np.convolve(exact_pmf[:length], _poisson_pmf(rest, length))[:length]
    return pmf


def _poisson_binomial_pmf(p: Floats) -> Floats:
    """The pmf of a sum of Bernoulli(``p``), over 0 .. len(p), from its characteristic
    function sampled at the ``len(p) + 1`` roots of unity (one FFT; exact to rounding).

    The probabilities are real, so the characteristic function at a root's conjugate is the
    conjugate of its value there: it is computed at the first half of the roots only, and the
    Hermitian FFT (``numpy.fft.hfft``) takes that half."""
    certain = int(np.count_nonzero(p >= 1.0))
    p = p[p < 1.0]
    n = len(p)
    pmf = np.zeros(n + certain + 1, dtype=np.float64)
    if n == 0:
        pmf[certain] = 1.0
        return pmf
    z = _roots_of_unity(n + 1)[: (n + 1) // 2 + 1]
    characteristic = np.prod(1.0 - p[None, :] + p[None, :] * z[:, None], axis=1)
    pmf[certain:] = np.maximum(np.fft.hfft(characteristic, n + 1) / (n + 1), 0.0)
    return pmf


@lru_cache(maxsize=64)
def _roots_of_unity(count: int) -> npt.NDArray[np.complex128]:
    """The ``count`` roots of unity (read-only: shared by every distribution of that size)."""
    z: npt.NDArray[np.complex128] = np.exp(2j * np.pi * np.arange(count) / count)
    z.flags.writeable = False
    return z


@lru_cache(maxsize=64)
def _log_factorials(length: int) -> tuple[Floats, Floats]:
    """``k`` and ``log k!`` for ``k = 0 .. length - 1`` (read-only, shared)."""
    k = np.arange(length, dtype=np.float64)
    log_factorial = np.concatenate(([0.0], np.cumsum(np.log(k[1:]))))
    k.flags.writeable = False
    log_factorial.flags.writeable = False
    return k, log_factorial


def _poisson_pmf(lam: float, length: int) -> Floats:
    if lam <= 0.0:
        pmf = np.zeros(length, dtype=np.float64)
        pmf[0] = 1.0
        return pmf
    k, log_factorial = _log_factorials(length)
    result: Floats = np.exp(k * math.log(lam) - lam - log_factorial)
    return result
