"""Logging the live evidence (``service.live_evidence``) to the model registry.

:class:`EvidenceLog` takes ``Engine.live(now)``, maps it to each version's ``live_*``
metrics and logs them with the registry's ``log_live(version, metrics, at)``, in a worker
thread (a registry call must never block the event loop). A failure is counted
(``provisioner_live_evidence_failures``) and logged once per version and run of
failures, never raised: the evidence is a by-product, the service goes on without it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any, Protocol

from service.live_evidence import evidence
from service.redact import scrub
from service.telemetry import Telemetry

log = logging.getLogger(__name__)


class EvidenceSink(Protocol):
    """Where live evidence goes (``models.registry.ModelRegistry``)."""

    def log_live(self, version: str, metrics: Mapping[str, float], at: float) -> None: ...


class EvidenceLog:
    def __init__(self, sink: EvidenceSink, telemetry: Telemetry) -> None:
        self.sink = sink
        self.telemetry = telemetry
        self.failing: set[str] = set()
        """The versions whose last attempt failed (a run of failures is logged once)."""

    async def log(self, live: dict[str, Any], window_s: float, at: float) -> int:
        """Log each version's evidence over ``window_s`` at ``at``; the versions logged."""
        logged = 0
        for version, metrics in evidence(live, window_s).items():
            try:
                await asyncio.to_thread(self.sink.log_live, version, metrics, at)
            except Exception as e:  # never fatal: the evidence is a by-product
                self.telemetry.live_evidence_failures.inc()
                if version not in self.failing:
                    log.warning(
                        "could not log the live evidence of version %s: %s (counted; "
                        "logged once until it works again)",
                        version,
                        scrub(str(e)),
                    )
                self.failing.add(version)
                continue
            logged += 1
            self.telemetry.live_evidence_logged.inc()
            if version in self.failing:
                log.info("live evidence of version %s logged again", version)
                self.failing.discard(version)
        return logged
