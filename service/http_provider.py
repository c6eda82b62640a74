"""The node API (docs/architecture.md, "The node API") over HTTP, with timeouts and retries.

Creates are retried only when the request cannot have reached the API (connection
refused) or the API says it made nothing (5xx); a create that timed out may have
happened, so it is not blindly repeated: the reconcile loop finds such a node by listing
(``GET /api/nodes``) and deals with it. Deletes are idempotent and retried freely.

Every attempt goes through a circuit breaker (``service.breaker``): after
``failure_threshold`` failed attempts in a row (refused connection, timeout, 5xx) calls
fail fast with :class:`CircuitOpen` for a cool-down, then one probe decides whether the
API is back. An API that is down therefore costs one quick error per call, not a round of
retries per call.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from service.breaker import CircuitBreaker
from service.provider import CircuitOpen, ProviderError, ProviderNode

log = logging.getLogger(__name__)
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 4
    base_delay_s: float = 0.2
    max_delay_s: float = 3.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Exponential backoff with full jitter."""
        return rng.uniform(0, min(self.max_delay_s, self.base_delay_s * 2**attempt))


class HttpNodeProvider:
    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 5.0,
        retry: RetryPolicy | None = None,
        client: httpx.AsyncClient | None = None,
        seed: int | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self.breaker = breaker if breaker is not None else CircuitBreaker()
        self._client = client or httpx.AsyncClient(base_url=self.base_url, timeout=timeout_s)
        self._rng = random.Random(seed)

    async def create(self) -> str:
        async def attempt() -> str:
            response = await self._client.post("/api/nodes")
            if response.status_code != 202:
                raise _Retryable(f"POST /api/nodes answered {response.status_code}")
            node_id = response.json().get("id")
            if not isinstance(node_id, str) or not node_id:
                raise ProviderError(f"POST /api/nodes gave no node id: {response.text[:200]}")
            return node_id

        return await self._with_retries("create a node", attempt, retry_timeouts=False)

    async def terminate(self, node_id: str) -> bool:
        async def attempt() -> bool:
            response = await self._client.delete(f"/api/nodes/{node_id}")
            if response.status_code == 404:
                return False
            if response.status_code not in (200, 202, 204):
                raise _Retryable(f"DELETE {node_id} answered {response.status_code}")
            return True

        return await self._with_retries(f"terminate {node_id}", attempt, retry_timeouts=True)

    async def list_nodes(self) -> list[ProviderNode] | None:
        async def attempt() -> list[ProviderNode] | None:
            response = await self._client.get("/api/nodes")
            if response.status_code in (404, 405):
                return None  # the original API has no listing
            if response.status_code != 200:
                raise _Retryable(f"GET /api/nodes answered {response.status_code}")
            items: Any = response.json()
            return [
                ProviderNode(
                    str(item["id"]),
                    str(item["status"]),
                    item.get("created_at"),
                    item.get("ready_at"),
                )
                for item in items
            ]

        return await self._with_retries("list nodes", attempt, retry_timeouts=True)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _with_retries(
        self, what: str, attempt: Callable[[], Awaitable[_T]], *, retry_timeouts: bool
    ) -> _T:
        last: Exception | None = None
        breaker = self.breaker
        for n in range(self.retry.attempts):
            if not breaker.allow(time.monotonic()):
                retry_in = breaker.retry_in(time.monotonic())
                raise CircuitOpen(
                    f"{what}: the node API is failing; circuit open (next probe in "
                    f"{retry_in:.1f} s)" + (f"; last error: {last}" if last else "")
                )
            try:
                result = await attempt()
            except (_Retryable, httpx.ConnectError) as e:
                breaker.failure(time.monotonic())
                last = e
            except httpx.TimeoutException as e:
                breaker.failure(time.monotonic())
                if not retry_timeouts:
                    raise ProviderError(f"{what}: timed out (it may have happened)") from e
                last = e
            except (httpx.HTTPError, ValueError, KeyError) as e:
                breaker.failure(time.monotonic())
                raise ProviderError(f"{what}: {e!r}") from e
            except ProviderError:  # an answer that makes no sense: the API is not well
                breaker.failure(time.monotonic())
                raise
            else:
                breaker.success(time.monotonic())
                return result
            if n + 1 < self.retry.attempts:
                delay = self.retry.delay(n, self._rng)
                log.warning("%s failed (%s); retry %d in %.2f s", what, last, n + 1, delay)
                await asyncio.sleep(delay)
        raise ProviderError(f"{what}: gave up after {self.retry.attempts} attempts: {last}")


class _Retryable(Exception):
    """An answer that says nothing was done; trying again is safe."""
