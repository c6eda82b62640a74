"""Hot reload: follow the registry's ``champion`` alias without a restart.

A check resolves the alias; when it names another version than the one served, that
version is loaded and warmed in a worker thread and swapped into the scorer atomically
(``ModelScorer.swap``). A failed check or load keeps what is served (the old model, or
the heuristic) and is reported by :meth:`RegistryWatcher.info` and the metrics.

:attr:`RegistryWatcher.outcome` says in a sentence what the last check came to (the
version served, or why the heuristic serves); it is None until the first check has
finished, which the live service's readiness waits for (``/readyz``).

A watcher of an ``optional`` alias (the ``challenger``, scored in shadow) follows it the
same way, except that an alias naming no version is a normal state, not a failure: the
model held is dropped (the scorer then holds none) and nothing is logged as wrong.
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
    def __init__(
        self,
        scorer: ModelScorer,
        registry: ModelRegistry,
        alias: str = CHAMPION,
        *,
        optional: bool = False,
    ) -> None:
        self.scorer = scorer
        self.registry = registry
        self.alias = alias
        self.optional = optional
        """The alias may name no version (the challenger): then no model is held, and that
        is no failure."""
        self.last_check: float | None = None
        self.last_error: str | None = None
        self.reloads = 0
        self.outcome: str | None = None
        """What the last check came to, in a sentence: what is served and, when it is not
        the champion, why. None until the first check has finished."""
        self._lock = asyncio.Lock()

    async def check(self) -> None:
        async with self._lock:  # one check at a time (the loop and the admin endpoint)
            self.last_check = time.time()
            try:
                note = await self._check()
            except Exception as e:  # a fault of ours, not the registry's: serve on, say so
                log.exception("the check of the model registry failed")
                note = self._failed(f"the check failed: {e}")
            self.outcome = self._serving() + ("" if note is None else f"; {note}")

    async def _check(self) -> str | None:
        """One check; what went wrong, or why no model is served (None: nothing)."""
        try:
            version = await asyncio.to_thread(self.registry.alias_version, self.alias)
        except RegistryError as e:
            self.scorer.note_failure(FallbackReason.REGISTRY_UNAVAILABLE, str(e))
            return self._failed(f"registry unreachable: {e}")
        if version is None:
            message = f"{self.registry.model_name!r} has no version with alias {self.alias!r}"
            if self.optional:
                dropped = self.scorer.swap(None)
                if dropped is not None:
                    log.info(
                        "%s version %s is %s no more", dropped.name, dropped.version, self.alias
                    )
                self.last_error = None
                return None
            self.scorer.note_failure(FallbackReason.NO_MODEL, message)
            self.last_error = None  # the registry answered: nothing is wrong
            return message
        if version == self.scorer.model_version:
            self.last_error = None
            return None
        loaded = await asyncio.to_thread(self.scorer.reload, self.registry, self.alias)
        if loaded:
            self.reloads += 1
            self.last_error = None
            log.info("%s %s version %s", self._loaded_verb(), self.registry.model_name, version)
            return None
        return self._failed(f"loading version {version} failed: {self.scorer.last_error}")

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

    def _serving(self) -> str:
        model = self.scorer.model
        if self.optional:
            if model is None:
                return f"no {self.alias}"
            return f"{self.alias}: {model.name!r} version {model.version}"
        if model is None:
            return "serving the heuristic"
        return f"serving {model.name!r} version {model.version}"

    def _loaded_verb(self) -> str:
        return f"{self.alias} is" if self.optional else "serving"

    def _failed(self, message: str) -> str:
        """Record a failed check or load; the message as recorded (credentials removed)."""
        message = scrub(message)  # client errors quote URLs, credentials included
        if message != self.last_error:
            log.warning("%s (serving %s)", message, self.scorer.model_version or "the heuristic")
        self.last_error = message
        return message


def _without_credentials(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
