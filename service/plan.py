"""The timed plan: the connects and the supply expected at each coming moment up to the lead
time, so that nodes are asked for when their likely ready time needs them.

The lead time ``L`` (one tick plus a high quantile of the boots, ``service.engine``) is how
far ahead a node asked for now may be needed. Sized over ``L`` as one window, every connect
anywhere in it counts against the pool now, and every node freed or coming anywhere in it
counts as supply for all of it. A plan looks at ``m`` moments ``t_k = k L / m``, ``k = 1 ..
m`` (the last is the window); at each:

- **demand** ``D(t)``: each scored user's probability of a connect within ``t``
  (:func:`spread`: the user's calibrated probability within ``L``, spread over time as the
  scorer's curve says), the baseline of unforeseen connects over ``t``, net of the nodes
  that disconnects free by ``t`` (a session of age ``a`` ends within ``t``), as a
  ``service.demand.Demand``;
- **late**: the nodes on their way that will not be ready by ``t``, in expectation (each
  counts by its chance, given how long it has been coming, ``features.boot_times``);
- **in_time**: the chance that a node asked for now is ready by ``t``.

The scaler (``service.scaler``) asks for nodes now only for the moments a node asked for now
reaches in time, and terminates a node only when every moment can spare it. With ``m = 1``
the plan is the one window the scaler always sized for.

Pure: arrays in, moments out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from service.demand import Demand, demand

Floats = npt.NDArray[np.float64]

MAX_PLAN_MOMENTS: Final = 32
"""Each moment of a plan costs one demand distribution per decision."""
TICKS_PER_MOMENT: Final = 4
"""Unless configured, a plan has one moment per this many ticks of lead time, at least one:
a 40 s lead time (10-29 s boots) is one window, 186 s (60-180 s boots) four moments.
Measured on the seed workload: four moments over a 40 s lead time cost 0.005 of efficiency
at a 99.5 % instant rate; over 186 s they gained 0.01-0.015 at 99 %."""


@dataclass(frozen=True, slots=True)
class Moment:
    """What is expected by one coming moment."""

    after_s: float
    """Seconds from now."""
    demand: Demand
    """Connects by then, net of the nodes freed by then."""
    late: float = 0.0
    """Nodes on their way not expected ready by then (in nodes)."""
    in_time: float = 1.0
    """The chance that a node asked for now is ready by then."""


def moment_count(lead_time_s: float, tick_interval_s: float, configured: int | None) -> int:
    """The moments of a plan: the configured count, else one per :data:`TICKS_PER_MOMENT`
    ticks of the lead time (1 to :data:`MAX_PLAN_MOMENTS`)."""
    if configured is not None:
        return configured
    count = math.floor(lead_time_s / (TICKS_PER_MOMENT * tick_interval_s))
    return max(1, min(MAX_PLAN_MOMENTS, count))


def moments_s(lead_time_s: float, count: int) -> Floats:
    """``count`` moments evenly up to the lead time, the last at it."""
    if count < 1:
        raise ValueError(f"a plan needs at least one moment, not {count}")
    moments: Floats = lead_time_s * np.arange(1, count + 1, dtype=np.float64) / count
    return moments


def spread(lead: Floats, raw: Floats | None, fractions: Floats) -> Floats:
    """Each user's probability of a connect within each moment, ``(users, moments)``.

    ``lead`` is the (calibrated) probability within the last moment; ``raw`` the scorer's
    own probabilities within each moment (its curve), None for a scorer without curves;
    ``fractions`` each moment over the last. The calibrated probability is spread as the
    scorer's cumulative hazard ``-log(1 - raw)`` grows: ``1 - (1 - lead) ** (Lambda(t) /
    Lambda(L))``, which is ``lead`` at the last moment and non-decreasing. Without curves, or
    for a row whose curve says nothing (0 at the last moment), the hazard is constant:
    ``Lambda(t) / Lambda(L) = t / L``."""
    lead = np.clip(np.nan_to_num(np.asarray(lead, dtype=np.float64)), 0.0, 1.0)
    if raw is None:
        share = np.broadcast_to(fractions, (len(lead), len(fractions)))
    else:
        raw = np.clip(np.nan_to_num(np.asarray(raw, dtype=np.float64)), 0.0, 1.0 - 1e-12)
        hazard = -np.log1p(-np.maximum.accumulate(raw, axis=1))
        whole = hazard[:, -1:]
        share = np.divide(
            hazard,
            whole,
            out=np.broadcast_to(fractions, hazard.shape).copy(),
            where=whole > 0,
        )
    spread_: Floats = 1.0 - (1.0 - lead[:, None]) ** np.clip(share, 0.0, 1.0)
    return spread_


def plan(
    probabilities: Floats,
    *,
    moments: Floats,
    baseline_rate: float,
    frees: Floats | None,
    ready: Floats,
    in_time: Floats,
    support: int,
    exact: int,
) -> tuple[Moment, ...]:
    """The moments of a plan.

    ``probabilities``: ``(users, moments)``, connects within each moment (:func:`spread`);
    ``baseline_rate``: unforeseen connects per second; ``frees``: ``(busy nodes, moments)``,
    each busy node freed within each moment (None: none counted); ``ready``: ``(coming
    nodes, moments)``, each node on its way ready within each moment; ``in_time``: a node
    asked for now ready within each moment; ``support`` and ``exact`` as in
    ``service.demand.demand``."""
    out = []
    for k, after_s in enumerate(moments.tolist()):
        moment_demand = demand(
            probabilities[:, k],
            baseline=baseline_rate * after_s,
            support=support,
            exact=exact,
            frees=None if frees is None else frees[:, k],
        )
        late = float(np.sum(1.0 - ready[:, k])) if len(ready) else 0.0
        out.append(Moment(after_s, moment_demand, late, float(in_time[k])))
    return tuple(out)
