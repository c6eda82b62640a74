"""The scaler: the timed plan and the pool in, nodes to request or terminate out.

Pure and stateless: ``decide`` is a function of its arguments.

Sizing rule, at one moment of the plan (``service.plan``; the lead time is its last moment,
and a plan of one moment is the one window over it). The *need* ``d`` is the fractional warm
count at which the expected shortfall by the moment, ``E[(D - d)+]``, is ``1 -
target_instant_rate`` of the expected demand ``E[D]`` (``service.demand``): sized on the
upper tail of the demand distribution, not on its mean. The pool's *warm* count ``w`` is idle
ready plus booting/requested nodes, minus the users waiting for them, minus the coming nodes
not expected ready by the moment (the moment's ``late``, from the boot times the caller
learned: a node booting for longer than most boots
counts by its chance of being ready in time). The target sized for is the caller's (the
configured one, or the one the service-level feedback puts in force, ``service.feedback``).
Around ``d`` lies a hysteresis band ``[low, high]`` of whole nodes:

- **up**: nodes are requested when the expected shortfall ``d - w`` reaches
  ``scale_up_threshold`` (0.7 of a node), enough to bring it below: ``low`` is the smallest
  ``w`` with ``d - w < 0.7``, and never less than ``min_ready``;
- **down**: a node is terminated when, without it, the pool would still hold a surplus of
  at least ``scale_down_threshold`` (0.3 of a node): ``high`` is the largest ``w`` with
  ``(w - 1) - d < 0.3``;
- **idle too long**: an idle ready node idle ``max_idle_s`` or more is terminated whenever
  the pool stays at or above ``low`` without it (the band's slack is not kept forever).

**Over the plan's moments.** Each moment ``t`` has its own need (the demand by ``t``, net of
the nodes freed by ``t``), its band and its warm count (minus the coming nodes not ready by
``t``). Nodes are requested for the largest shortfall among the moments a node asked for now
reaches in time (``ServiceConfig.plan_in_time``): not for a sooner one, which it would miss,
nor for one beyond the lead time, which a later tick can still serve. A node is terminated,
or retired for idling, only when every moment can spare it: a node freed now and needed
again before the lead time is out is kept rather than booted again.

**Unsound needs are refused.** A need that is not a finite number, or that lies above what
the demand can support (:meth:`service.demand.Demand.bound`: no distribution with that mean
and variance needs it), comes from a degenerate distribution or a bug, never from the
users. It is not acted on: the decision is made on the last sound need the caller holds
(``held_need``; 0, i.e. ``min_ready``, when none), and :attr:`Decision.refused` says why.

Terminations take booting nodes first (newest first), then idle ready nodes (idle the
longest first); never an allocated node. Requests never take the pool above ``max_nodes``
(nodes in every state but gone count); a pool above it (adopted nodes, a lowered budget)
sheds idle nodes down to it. One tick never both requests and terminates.

Invariants (``tests/service/test_scaler.py``): never above the budget through a request;
never terminates an allocated node; never leaves fewer than ``min_ready`` warm nodes unless
at the budget; never requests and terminates in the same decision.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from service.config import ServiceConfig
from service.demand import Demand
from service.plan import Moment
from service.pool import PoolView


class RefusalReason(StrEnum):
    """Why a need was not acted on (a label of the ``/metrics`` counter)."""

    NOT_FINITE = "not_finite"
    """The need or the expected demand is NaN or infinite."""
    UNSUPPORTED = "unsupported"
    """The need lies above the most the demand can support."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """A need the scaler refused, and the distribution that produced it."""

    reason: RefusalReason
    need: float
    bound: float
    """The most the demand supports (``Demand.bound``)."""
    demand: dict[str, Any]
    """``Demand.summary()``: what a log line shows of the distribution."""


def check_need(demand: Demand, need: float, target: float) -> Refusal | None:
    """None when ``need`` is sound for ``demand`` (see the module doc), else why not."""
    if not (math.isfinite(need) and math.isfinite(demand.mean)):
        return Refusal(RefusalReason.NOT_FINITE, need, math.nan, demand.summary())
    bound = demand.bound(target)
    if need > bound + 1e-6 * (1.0 + bound):
        return Refusal(RefusalReason.UNSUPPORTED, need, bound, demand.summary())
    return None


@dataclass(frozen=True, slots=True)
class Decision:
    request: int
    """Nodes to request."""
    terminate: tuple[str, ...]
    """Node ids to terminate."""
    need: float
    """Fractional warm count the service level calls for."""
    low: int
    high: int
    """The band the warm count is kept in."""
    warm: int
    """Warm count before the decision."""
    expected_demand: float
    reason: str
    refused: Refusal | None = None
    """Set when the demand's own need was refused and ``need`` is the one held instead."""

    @property
    def desired_warm(self) -> int:
        """The warm count the decision aims at (``low`` <= it <= ``high`` within the budget)."""
        return self.warm + self.request - len(self.terminate)


def band(need: float, config: ServiceConfig) -> tuple[int, int]:
    """``(low, high)`` around ``need`` (see the module doc), ignoring the budget."""
    low = max(config.min_ready, 0, math.floor(need - config.scale_up_threshold) + 1)
    high = math.ceil(need + config.scale_down_threshold + 1.0) - 1
    return low, max(low, high)


def decide(
    plan: Sequence[Moment],
    view: PoolView,
    config: ServiceConfig,
    now: float,
    *,
    held_need: float | None = None,
    target: float | None = None,
) -> Decision:
    """What to request or terminate now (see the module doc). ``plan``: the coming moments,
    the lead time last (``service.plan``; one moment is the one window over the lead time);
    ``held_need`` is the last sound need, acted on instead of an unsound one; ``target`` the
    instant rate to size for (the configured one when None)."""
    if not plan:
        raise ValueError("a plan needs at least one moment")
    counts = view.counts
    target = config.target_instant_rate if target is None else target
    lead = plan[-1]
    needs = [moment.demand.need(target) for moment in plan]
    refused = next(
        (
            refusal
            for moment, need in zip(plan, needs, strict=True)
            if (refusal := check_need(moment.demand, need, target)) is not None
        ),
        None,
    )
    detail = ""
    if refused is not None:
        # the held need stands for the lead time alone: no moment of the plan is trusted
        plan, needs = (lead,), [held_need if held_need is not None else 0.0]
        detail = (
            f"refused need {refused.need:.2f} ({refused.reason.value}, bound {refused.bound:.2f}); "
        )
    bands = [band(need, config) for need in needs]
    need, (low, high) = needs[-1], bands[-1]
    warm = counts.warm
    supplies = [warm - moment.late for moment in plan]
    live = counts.live
    room = config.max_nodes - live

    def decision(request: int, terminate: tuple[str, ...], reason: str) -> Decision:
        return Decision(
            request, terminate, need, low, high, warm, lead.demand.mean, reason, refused
        )

    late_note = f" ({lead.late:.2f} of it late)" if lead.late > 0.0 else ""
    detail += (
        f"need {need:.2f} (E[D] {lead.demand.mean:.2f}), warm {warm}{late_note} in [{low}, {high}]"
    )
    if room < 0:
        shed = view.terminable()[:-room]
        return decision(
            0, shed, f"over budget {live}/{config.max_nodes}: shed {len(shed)}; {detail}"
        )
    asked = [k for k, moment in enumerate(plan) if moment.in_time >= config.plan_in_time] or [
        len(plan) - 1
    ]
    binding = max(asked, key=lambda k: bands[k][0] - supplies[k])
    short = bands[binding][0] - supplies[binding]
    if short > 0:
        short_nodes = math.ceil(short - 1e-9)
        request = min(short_nodes, room)
        if request <= 0:
            return decision(0, (), f"at budget {live}/{config.max_nodes}; {detail}")
        capped = " (budget)" if request < short_nodes else ""
        when = _when(plan, binding)
        return decision(request, (), f"up {request}{capped}{when}; {detail}")
    spare = min(supply - high_k for supply, (_, high_k) in zip(supplies, bands, strict=True))
    if spare > 0:
        shed = view.terminable()[: math.floor(spare + 1e-9)]
        if not shed:
            return decision(0, (), f"hold (nothing terminable yet); {detail}")
        return decision(0, shed, f"down {len(shed)}; {detail}")
    stale_before = now - config.max_idle_s
    stale = tuple(node_id for node_id, since in view.idle if since <= stale_before)
    slack = min(supply - low_k for supply, (low_k, _) in zip(supplies, bands, strict=True))
    if stale and slack > 0:
        shed = stale[: math.floor(slack + 1e-9)]
        return decision(0, shed, f"retire {len(shed)} idle >= {config.max_idle_s:.0f}s; {detail}")
    return decision(0, (), f"hold; {detail}")


def _when(plan: Sequence[Moment], binding: int) -> str:
    """Which moment a request is for, when the plan has more than one."""
    return f" for +{plan[binding].after_s:.0f}s" if len(plan) > 1 else ""
