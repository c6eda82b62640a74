"""Hot reload: follow the registry's ``champion`` alias without a restart.

A check resolves the alias; when it names another version than the one served, that
version is loaded and warmed in a worker thread and swapped into the scorer atomically
(``ModelScorer.swap``). A failed check or load keeps what is served (the old model, or
the heuristic) and is reported by :meth:`RegistryWatcher.info` and the metrics.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from models.model_scorer import FallbackReason, ModelScorer
from models.registry import CHAMPION, ModelRegistry, RegistryError
from service.redact import scrub

log = logging.getLogger(__name__)


class RegistryWatcher:
    def __init__(self, scorer: ModelScorer, registry: ModelRegistry, alias: str = CHAMPION) -> None:
        self.scorer = scorer
        self.registry = registry
        self.alias = alias
        self.last_check: float | None = None
        self.last_error: str | None = None
        self.reloads = 0
        self._lock = asyncio.Lock()

    async def check(self) -> None:
        async with self._lock:  # one check at a time (the loop and the admin endpoint)
            self.last_check = time.time()
            try:
                version = await asyncio.to_thread(self.registry.alias_version, self.alias)
            except RegistryError as e:
                self.scorer.note_failure(FallbackReason.REGISTRY_UNAVAILABLE, str(e))
                self._failed(f"registry unreachable: {e}")
                return
            if version is None:
                message = f"{self.registry.model_name!r} has no version with alias {self.alias!r}"
                self.scorer.note_failure(FallbackReason.NO_MODEL, message)
                self.last_error = None  # the registry answered: nothing is wrong
                return
            if version == self.scorer.model_version:
                self.last_error = None
                return
            loaded = await asyncio.to_thread(self.scorer.reload, self.registry, self.alias)
            if loaded:
                self.reloads += 1
                self.last_error = None
                log.info("serving %s version %s", self.registry.model_name, version)
            else:
                self._failed(f"loading version {version} failed: {self.scorer.last_error}")

    def info(self) -> dict[str, Any]:
        model = self.scorer.model
        reason = self.scorer.fallback_reason
        return {
            "source": "model" if model is not None else "heuristic",
            "fallback_reason": None if reason is None else reason.value,
            "name": self.registry.model_name,
            "alias": self.alias,
            "version": None if model is None else model.version,
            "loaded_at": None if model is None else model.loaded_at,
            "load_seconds": None if model is None else model.load_seconds,
            "horizon_s": self.scorer.horizon_s,
            "registry": _without_credentials(self.registry.tracking_uri),
            "last_check": self.last_check,
            "last_error": self.last_error,
            "reloads": self.reloads,
        }

    def fallbacks(self) -> dict[str, int]:
        return self.scorer.fallback_calls()

    def _failed(self, message: str) -> None:
        message = scrub(message)  # client errors quote URLs, credentials included
        if message != self.last_error:
            log.warning("%s (serving %s)", message, self.scorer.model_version or "the heuristic")
        self.last_error = message


def _without_credentials(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
