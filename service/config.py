"""The decision core's knobs: one frozen dataclass, every default in one place.

The original service's knobs keep their meaning (``min_ready``, the two thresholds,
``max_idle_s``); the service-level target and the node budget are new. See
``service.scaler`` for how each one enters the sizing rule.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from features.boot_times import DEFAULT_BOOT_PRIOR_S, DEFAULT_BOOT_QUANTILE, DEFAULT_TICK_INTERVAL_S
from models.defaults import DEFAULT_RECENT_CUTOFF_S
from service.feedback import DEFAULT_FEEDBACK_GAIN
from service.plan import MAX_PLAN_MOMENTS


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    min_ready: int = 2
    """Warm nodes (idle ready + booting, not promised to a waiting user) always kept,
    unless the budget forbids it."""
    scale_up_threshold: float = 0.7
    """Nodes are requested when the expected shortfall (the need minus the warm nodes,
    in nodes) reaches this; enough are requested to bring it below."""
    scale_down_threshold: float = 0.3
    """A warm node is terminated when, without it, the pool would still hold at least
    this much surplus (in nodes) over the need."""
    max_idle_s: float = 600.0
    """An idle ready node idle this long is terminated as soon as the pool can do without
    it: down to the lower edge of the hysteresis band instead of its upper edge."""
    target_instant_rate: float = 0.99
    """The wanted share of connects served at once. The need is the smallest warm count
    whose expected shortfall over the lead time is at most ``1 - target`` of the expected
    demand (so that, in expectation, that share of connects finds a warm node)."""
    max_nodes: int = 50
    """The node budget: nodes alive (requested, booting, ready, allocated, terminating)
    never exceed it through our requests."""
    lead_time_s: float | None = None
    """The time warm nodes must cover, and the horizon the scores are converted to. None
    (the default): learned, one tick plus the ``boot_quantile`` of the boot times the nodes
    show (``features.boot_times``); a number fixes it."""
    boot_quantile: float = DEFAULT_BOOT_QUANTILE
    """The share of boots the learned lead time covers."""
    boot_prior_s: float = DEFAULT_BOOT_PRIOR_S
    """The boot time assumed until boots are seen (it weighs a few boots, then fades)."""
    tick_interval_s: float = DEFAULT_TICK_INTERVAL_S
    """How often the shell calls ``Engine.tick``."""
    recent_cutoff_s: float = DEFAULT_RECENT_CUTOFF_S
    """Only users seen (any user event) within this many seconds and not connected are
    scored; the others count as probability 0 (their rare connects are covered by the
    calibrated baseline rate of unforeseen connects)."""
    exact_users: int = 256
    """The demand distribution is exact (Poisson-binomial) over this many users with the
    highest probabilities; the rest, all small, are summed as one Poisson. Time and memory
    grow with its square (256: about 3 ms a tick)."""
    free_credit: float = 1.0
    """Share of the nodes expected to be freed by disconnects within the lead time that the
    sizing counts on. Like a booting node, a node freed within the window serves the connects
    after it; both count in full, and the service-level feedback corrects the level. 0 counts
    on none."""
    plan_moments: int | None = None
    """Moments, evenly up to the lead time, the scaler plans the warm pool for
    (``service.plan``): nodes are asked for when a moment a node asked for now reaches in
    time needs them, and terminated only when every moment can spare them. 1 sizes over
    the lead time as one window; None (the default): one moment per four ticks of the lead
    time (``service.plan.moment_count``)."""
    plan_in_time: float = 0.9
    """Nodes are asked for now only for the moments of the plan that a node asked for now
    reaches with at least this chance (the boots learned); a shortfall sooner is left to the
    nodes already coming, one later to the next ticks. With one moment, the window is always
    sized. Lower, requests chase moments most boots miss: at 0.5, 45 % more nodes were
    created for 0.011 less efficiency (seed, 60-180 s boots; docs/bench.md)."""
    replace_at_once: bool = True
    """After a connect takes a warm node, size again at once (requests only) instead of at
    the next tick, so the node taken is replaced within a boot time."""
    feedback_gain: float = DEFAULT_FEEDBACK_GAIN
    """How hard the realised instant rate steers the target the scaler sizes for
    (``service.feedback``); 0 turns the feedback off."""
    size_on_first_sight: bool = True
    """Size at once (a tick) when a user never seen before shows up, at most once a second,
    instead of at the next tick: a user never seen is new evidence, and at a cold start,
    when every user is new, the first nodes are asked for a boot earlier."""
    calibrate: bool = True
    """Rescale scores to the connect rate observed for their score band (per source), so
    that an uncalibrated scorer (the heuristic) still sizes right. Identity until enough
    outcomes are seen; a calibrated model stays close to identity."""
    calibration_half_life_s: float = 600.0
    """How fast old outcomes are forgotten by the calibration (exponential forgetting). Ten
    minutes: a score band's connect rate changes within minutes when a crowd arrives at once
    (a shift start), and a band's rate learned over hours lags it by a boot. A band scored
    rarely keeps a floor of evidence however old (``service.calibration.EVIDENCE_FLOOR``)."""
    calibration_prior: float = 10.0
    """Weight, in expected connects, of the prior that each band is already calibrated."""
    prediction_log_max_per_tick: int = 2000
    """The prediction log (``service.prediction_log``) keeps at most this many users per tick
    and version, a deterministic sample weighted to stand for everyone scored."""
    prediction_log_keep_settled: int = 100_000
    """Settled predictions per version held for ``PredictionLog.take_settled`` between two
    calls; older ones are dropped."""
    user_retention_s: float = 8 * 86_400.0
    """Users not seen (no user event) for this long, and not connected, are forgotten: their
    online features and engine rows are dropped, so that what the engine holds depends on
    the users present, not on the uptime. One seen again starts from an empty history. A
    week and a day: a user with a weekly habit is kept."""
    live_metrics_bucket_s: float = 300.0
    """The live metrics (``service.live_metrics``) sum settled predictions in time buckets
    this long; windows are sums of the last buckets."""
    live_metrics_windows_s: tuple[float, ...] = (3600.0, 86_400.0)
    """The rolling windows of the live metrics (1 h and 24 h)."""

    def __post_init__(self) -> None:
        # saved state brings the windows back as a JSON list
        object.__setattr__(
            self, "live_metrics_windows_s", tuple(float(w) for w in self.live_metrics_windows_s)
        )
        problems: list[str] = []
        if self.min_ready < 0:
            problems.append(f"min_ready must be >= 0, not {self.min_ready}")
        if self.max_nodes < 1:
            problems.append(f"max_nodes must be >= 1, not {self.max_nodes}")
        for name in ("scale_up_threshold", "scale_down_threshold"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                problems.append(f"{name} must be in [0, 1], not {value}")
        if not 0.0 < self.target_instant_rate < 1.0:
            problems.append(
                f"target_instant_rate must be in (0, 1), not {self.target_instant_rate}"
            )
        if self.lead_time_s is not None and not (
            math.isfinite(self.lead_time_s) and self.lead_time_s > 0
        ):
            problems.append(
                f"lead_time_s must be a finite number > 0 or unset, not {self.lead_time_s}"
            )
        if not 0.5 <= self.boot_quantile < 1.0:
            problems.append(f"boot_quantile must be in [0.5, 1), not {self.boot_quantile}")
        if not (math.isfinite(self.boot_prior_s) and self.boot_prior_s >= 0):
            problems.append(f"boot_prior_s must be a finite number >= 0, not {self.boot_prior_s}")
        for name in (
            "max_idle_s",
            "tick_interval_s",
            "recent_cutoff_s",
            "calibration_half_life_s",
            "live_metrics_bucket_s",
        ):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                problems.append(f"{name} must be a finite number > 0, not {value}")
        if not (
            math.isfinite(self.user_retention_s) and self.user_retention_s >= self.recent_cutoff_s
        ):
            problems.append(
                "user_retention_s must be a finite number >= recent_cutoff_s "
                f"({self.recent_cutoff_s}), not {self.user_retention_s}"
            )
        if not (math.isfinite(self.feedback_gain) and self.feedback_gain >= 0):
            problems.append(f"feedback_gain must be a finite number >= 0, not {self.feedback_gain}")
        if not 0.0 < self.plan_in_time <= 1.0:
            problems.append(f"plan_in_time must be in (0, 1], not {self.plan_in_time}")
        if self.plan_moments is not None and not 1 <= self.plan_moments <= MAX_PLAN_MOMENTS:
            problems.append(
                f"plan_moments must be in [1, {MAX_PLAN_MOMENTS}], not {self.plan_moments}"
            )
        if not 0.0 <= self.free_credit <= 1.0:
            problems.append(f"free_credit must be in [0, 1], not {self.free_credit}")
        if self.exact_users < 1:
            problems.append(f"exact_users must be >= 1, not {self.exact_users}")
        if not (math.isfinite(self.calibration_prior) and self.calibration_prior > 0):
            problems.append(f"calibration_prior must be > 0, not {self.calibration_prior}")
        if self.prediction_log_max_per_tick < 1:
            problems.append(
                f"prediction_log_max_per_tick must be >= 1, not {self.prediction_log_max_per_tick}"
            )
        if self.prediction_log_keep_settled < 0:
            problems.append(
                f"prediction_log_keep_settled must be >= 0, not {self.prediction_log_keep_settled}"
            )
        windows = self.live_metrics_windows_s
        if not windows or not all(math.isfinite(w) and w > 0 for w in windows):
            problems.append(
                f"live_metrics_windows_s must be finite numbers > 0, not {list(windows)}"
            )
        if problems:
            raise ValueError("; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["live_metrics_windows_s"] = list(self.live_metrics_windows_s)  # as JSON has it
        return data
