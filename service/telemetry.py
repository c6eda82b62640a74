"""Prometheus metrics of one service instance, in a registry of its own (no globals).

The service level per window (``service.connect_windows``) is exported as gauges labelled
``window`` ("5m", "30m", "1h", "6h"). A window without connects has no instant rate and no
burn rate: those two gauges are NaN then, not absent. The series stay (a scrape always
shows every window, and ``absent()`` keeps meaning a missing target), and NaN compares
false in PromQL, so no alert on them fires for a window nobody connected in, as with the
usual ``rate(bad[w]) / rate(all[w])``, which is NaN without traffic too
(docs/alerts.md).

The live metrics of the model versions (``Engine.live``: predictions settled against the
connects that followed) are gauges labelled ``role`` (champion, challenger, fallback: the
heuristic behind a model), ``version`` and ``window`` ("1h", "24h"), set afresh at every
refresh: a version that left its role leaves the series. A figure a window does not have
(nothing settled, an AUC of one class) is NaN.
"""

from __future__ import annotations

import math
import sys
import tracemalloc
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

from service.breaker import BreakerState, CircuitBreaker
from service.connect_windows import ServiceLevel
from service.engine import EngineStatus
from service.scaler import RefusalReason
from service.service_level import Metrics

LIVE_ROLES: Final = ("champion", "challenger", "fallback")
"""The roles whose live metrics are exported (a retired version's are not)."""
_LIVE_LABELS: Final = ["role", "version", "window"]


class Telemetry:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        # the process' memory and CPU (process_*), as every Prometheus client exports them
        ProcessCollector(registry=r)
        self.heap_blocks = Gauge(
            "provisioner_python_heap_blocks",
            "Memory blocks the Python allocator holds (sys.getallocatedblocks), at the scrape.",
            registry=r,
        )
        self.heap_blocks.set_function(sys.getallocatedblocks)
        self.traced_bytes = Gauge(
            "provisioner_python_traced_bytes",
            "Memory Python's allocations hold now, numpy's buffers included, as tracemalloc "
            "traces them: 0 unless PYTHONTRACEMALLOC=N is set in the environment (it slows "
            "every allocation; for looking into memory, not for production).",
            registry=r,
        )
        self.traced_bytes.set_function(lambda: tracemalloc.get_traced_memory()[0])
        self.users_tracked = Gauge(
            "provisioner_users_tracked",
            "Users the engine holds (seen, not yet forgotten).",
            registry=r,
        )
        self.users_forgotten = Gauge(
            "provisioner_users_forgotten",
            "Users forgotten since the start: unseen for the retention, not connected.",
            registry=r,
        )
        self.events = Counter(
            "provisioner_events_consumed", "Events applied from the event log.", registry=r
        )
        self.redelivered = Counter(
            "provisioner_events_redelivered",
            "Entries delivered again and skipped (already applied).",
            registry=r,
        )
        self.dead_letters = Counter(
            "provisioner_dead_letters", "Entries refused by the consumer.", registry=r
        )
        self.fallbacks = Gauge(
            "provisioner_scorer_fallbacks",
            "Scoring calls answered by the heuristic instead of the model, by reason.",
            ["reason"],
            registry=r,
        )
        self.nodes = Gauge("provisioner_pool_nodes", "Nodes by state.", ["state"], registry=r)
        self.desired_warm = Gauge(
            "provisioner_desired_warm_nodes", "Warm nodes the scaler wants.", registry=r
        )
        self.instant_rate = Gauge(
            "provisioner_instant_rate", "Connects served at once / all connects.", registry=r
        )
        self.instant_rate_window = Gauge(
            "provisioner_instant_rate_window",
            "Connects served at once / connects, over the window (NaN without connects).",
            ["window"],
            registry=r,
        )
        self.connects_window = Gauge(
            "provisioner_connects_window", "Connects in the window.", ["window"], registry=r
        )
        self.burn_rate = Gauge(
            "provisioner_error_budget_burn_rate",
            "(1 - instant rate) / (1 - target) over the window: 1 spends the error budget as "
            "fast as it accrues (NaN without connects).",
            ["window"],
            registry=r,
        )
        self.target_instant_rate = Gauge(
            "provisioner_target_instant_rate",
            "The service level target: the wanted share of connects served at once.",
            registry=r,
        )
        self.target_in_force = Gauge(
            "provisioner_target_in_force",
            "The instant rate the scaler sizes for now: the target, steered by the realised "
            "rate of the recent connects (service.feedback).",
            registry=r,
        )
        self.lead_time = Gauge(
            "provisioner_lead_time_seconds",
            "The time warm nodes must cover: a tick plus the learned boot quantile, unless set.",
            registry=r,
        )
        self.boot_seconds = Gauge(
            "provisioner_boot_seconds",
            "Boot times learned from the nodes (create request to ready), by quantile.",
            ["quantile"],
            registry=r,
        )
        self.boots_seen = Gauge(
            "provisioner_boots_seen", "Node boots measured since the start.", registry=r
        )
        self.model_loaded = Gauge(
            "provisioner_model_loaded",
            "1 while a model from the registry scores the users, 0 while the heuristic "
            "answers every call (/v1/model says why). Absent without a model registry.",
            registry=None,  # registered by the first observe_model: a service with a registry
        )
        self.efficiency = Gauge(
            "provisioner_efficiency", "Connected user-seconds / node-seconds.", registry=r
        )
        self.nodes_per_connect = Gauge(
            "provisioner_nodes_per_connect",
            "Nodes created / connects: about 1 when each session boots a node, far above 1 "
            "when the pool churns.",
            registry=r,
        )
        self.idle_share = Gauge(
            "provisioner_idle_share",
            "Share of node time in which a node served no user (booting, idle, terminating).",
            registry=r,
        )
        self.refused_needs = Gauge(
            "provisioner_refused_needs",
            "Needs the scaler refused (not acted on: the last sound one was held), by reason.",
            ["reason"],
            registry=r,
        )
        self.waits = Histogram(
            "provisioner_connect_wait_seconds",
            "Seconds from connect to a node, for connects that waited.",
            buckets=(1, 2, 5, 10, 15, 20, 30, 45, 60, 120),
            registry=r,
        )
        self.scoring = Histogram(
            "provisioner_scoring_seconds",
            "Time to score the users of one tick (features + scorer + scaler).",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0),
            registry=r,
        )
        self.commands = Counter(
            "provisioner_commands", "Node commands issued.", ["kind", "outcome"], registry=r
        )
        self.ticks = Counter("provisioner_ticks", "Scaling decisions made.", registry=r)
        self.skipped_ticks = Counter(
            "provisioner_ticks_skipped", "Ticks skipped while events were not visible.", registry=r
        )
        self.reconciled = Counter(
            "provisioner_reconciled", "Reconciliation actions.", ["action"], registry=r
        )
        self.ready = Gauge("provisioner_ready", "1 when the service sees events.", registry=r)
        self.log_outages = Counter(
            "provisioner_event_log_outages",
            "Times the event log became unreachable (the service went blind).",
            registry=r,
        )
        self.breaker_state = Gauge(
            "provisioner_provider_breaker_state",
            "The node API circuit breaker: 1 for the state it is in, 0 for the others.",
            ["state"],
            registry=r,
        )
        self.breaker_opened = Gauge(
            "provisioner_provider_breaker_opened",
            "Times the node API circuit breaker opened.",
            registry=r,
        )
        self.breaker_rejected = Gauge(
            "provisioner_provider_breaker_rejected",
            "Node API calls refused by the open circuit breaker.",
            registry=r,
        )
        self.live_settled = Gauge(
            "provisioner_live_settled",
            "Predictions settled (against the connects within the scorer's horizon) in the "
            "window, by role and version.",
            _LIVE_LABELS,
            registry=r,
        )
        self.live_weight = Gauge(
            "provisioner_live_weight",
            "Scored users the settled predictions of the window stand for (the settled count "
            "unless ticks were sampled).",
            _LIVE_LABELS,
            registry=r,
        )
        self.live_log_loss = Gauge(
            "provisioner_live_log_loss",
            "Log loss of the predictions settled in the window (NaN: none).",
            _LIVE_LABELS,
            registry=r,
        )
        self.live_brier = Gauge(
            "provisioner_live_brier",
            "Brier score of the predictions settled in the window (NaN: none).",
            _LIVE_LABELS,
            registry=r,
        )
        self.live_ece = Gauge(
            "provisioner_live_ece",
            "Expected calibration error (15 bins of equal weight) of the predictions settled "
            "in the window (NaN: none).",
            _LIVE_LABELS,
            registry=r,
        )
        self.live_auc = Gauge(
            "provisioner_live_auc",
            "ROC AUC of the predictions settled in the window (NaN: none, or one class only).",
            _LIVE_LABELS,
            registry=r,
        )
        self.live_base_rate = Gauge(
            "provisioner_live_base_rate",
            "Share of the predictions settled in the window whose user connected (NaN: none).",
            _LIVE_LABELS,
            registry=r,
        )
        self.model_degraded = Gauge(
            "provisioner_model_degraded",
            "1 while the champion's health monitor says degraded (feature drift or a change "
            "in its live loss), 0 while healthy; absent without a model version.",
            ["version"],
            registry=r,
        )
        self.live_evidence_logged = Counter(
            "provisioner_live_evidence_logged",
            "Versions' live metrics logged to their MLflow runs.",
            registry=r,
        )
        self.live_evidence_failures = Counter(
            "provisioner_live_evidence_failures",
            "Attempts to log a version's live metrics to its MLflow run that failed.",
            registry=r,
        )
        self._waits_seen = 0
        self._model_observed = False

    def observe_status(self, status: EngineStatus, metrics: Metrics) -> None:
        counts = status.counts.to_dict()
        for state, value in counts.items():
            self.nodes.labels(state=state).set(value)
        if status.desired_warm is not None:
            self.desired_warm.set(status.desired_warm)
        self.instant_rate.set(status.metrics.instant_rate)
        self.efficiency.set(status.metrics.efficiency)
        self.nodes_per_connect.set(status.metrics.nodes_per_connect)
        self.users_tracked.set(status.tracked_users)
        self.users_forgotten.set(status.forgotten_users)
        self.idle_share.set(status.metrics.idle_share)
        for reason in RefusalReason:
            self.refused_needs.labels(reason=reason.value).set(
                status.refused_needs.get(reason.value, 0)
            )
        self.target_in_force.set(status.feedback.target_in_force)
        self.lead_time.set(status.lead_time_s)
        boots = status.boot_times
        self.boot_seconds.labels(quantile="0.5").set(boots["median_s"])
        self.boot_seconds.labels(quantile=str(boots["quantile"])).set(boots["quantile_s"])
        self.boots_seen.set(boots["seen"])
        for wait in metrics.waits_after(self._waits_seen):
            self.waits.observe(wait)
        self._waits_seen = metrics.waits.count

    def observe_service_level(self, level: ServiceLevel) -> None:
        self.target_instant_rate.set(level.target_instant_rate)
        for window in level.windows:
            self.connects_window.labels(window=window.window).set(window.connects)
            self.instant_rate_window.labels(window=window.window).set(_or_nan(window.instant_rate))
            self.burn_rate.labels(window=window.window).set(_or_nan(window.burn_rate))

    def observe_model(self, loaded: bool) -> None:
        if not self._model_observed:
            self.registry.register(self.model_loaded)
            self._model_observed = True
        self.model_loaded.set(1 if loaded else 0)

    def observe_breaker(self, breaker: CircuitBreaker) -> None:
        for state in BreakerState:
            self.breaker_state.labels(state=state.value).set(1 if breaker.state is state else 0)
        self.breaker_opened.set(breaker.opened)
        self.breaker_rejected.set(breaker.rejected)

    def observe_live(self, live: dict[str, Any]) -> None:
        """The live metrics (``Engine.live``) of the versions in a role, per window."""
        gauges = {
            "n": self.live_settled,
            "weight": self.live_weight,
            "log_loss": self.live_log_loss,
            "brier": self.live_brier,
            "ece": self.live_ece,
            "auc": self.live_auc,
            "base_rate": self.live_base_rate,
        }
        for gauge in gauges.values():
            gauge.clear()
        self.model_degraded.clear()
        health = live.get("health") or {}
        if health.get("version") is not None:
            self.model_degraded.labels(version=health["version"]).set(
                1 if health.get("degraded") else 0
            )
        for version, report in live.get("versions", {}).items():
            role = report["role"]
            if role not in LIVE_ROLES:
                continue
            for window, metrics in report["windows"].items():
                for key, gauge in gauges.items():
                    labels = gauge.labels(role=role, version=version, window=window)
                    labels.set(_or_nan(metrics[key]))

    def observe_fallbacks(self, counts: dict[str, int]) -> None:
        for reason, value in counts.items():
            self.fallbacks.labels(reason=reason).set(value)


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else value
