"""Leader election for replicas: a lease in Redis with expiry and a fencing token.

Every replica consumes the event log and serves predictions; only the holder of the lease
ticks the scaler and sends commands to the node API, so the fleet is never scaled twice.

- **Acquire**: ``SET <key> <holder> NX PX <ttl>``; on success the fencing counter
  ``<key>:fence`` is incremented (``INCR``, in the same script, so atomically) and its new
  value is this term's *fencing token*. Tokens only grow: a later term always has a
  larger one.
- **Renew**: compare-and-extend (Lua): the expiry is pushed back only while the key still
  names this holder *and* the counter still equals this term's token.
- **Release**: compare-and-delete, same check; a graceful stop hands over at once, a
  killed holder's lease simply expires after ``ttl``.
- **Guard**: the same check without side effects, run before every scaling action
  (:class:`FencedProvider`): a holder that lost the lease (paused, partitioned, expired
  and taken over) cannot act on a stale term, even if its own timer still says leader.

:class:`Lease` is only Redis calls: expiry is Redis' own (``PX``), nothing here reads a
clock. :class:`Leadership` keeps a lease in an asyncio task and answers ``is_leader()``
for the live service; it also distrusts itself: leadership lapses locally a safety margin
before the lease could expire in Redis, measured from the moment the renewal was *sent*,
so a slow or failed renewal never leaves two replicas both believing they lead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import redis

from service.provider import NodeProvider, ProviderError, ProviderNode

log = logging.getLogger(__name__)

_ACQUIRE: Final = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2])
end
return 0
"""

_HOLDS: Final = """
local function holds()
  return redis.call('GET', KEYS[1]) == ARGV[1] and redis.call('GET', KEYS[2]) == ARGV[2]
end
"""

_RENEW: Final = (
    _HOLDS
    + """
if holds() then
  return redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return 0
"""
)

_RELEASE: Final = (
    _HOLDS
    + """
if holds() then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
)

_GUARD: Final = (
    _HOLDS
    + """
if holds() then
  return 1
end
return 0
"""
)


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    """Who holds the lease now (None: nobody), the last fencing token handed out, and how
    long the lease has left (ms; None when nobody holds it)."""

    holder: str | None
    fence: int
    ttl_ms: int | None


class Lease:
    """One replica's handle on the lease at ``key`` (Redis calls only; no clock).

    ``holder`` names this replica (unique per process: a restarted replica is a new
    holder). Fencing tokens are ints > 0; 0 is never a token.
    """

    def __init__(
        self, client: redis.Redis, key: str, *, ttl_ms: int, holder: str | None = None
    ) -> None:
        if ttl_ms <= 0:
            raise ValueError(f"ttl_ms must be positive, not {ttl_ms}")
        self.client = client
        self.key = key
        self.fence_key = f"{key}:fence"
        self.ttl_ms = ttl_ms
        self.holder = holder if holder is not None else uuid.uuid4().hex
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._guard = client.register_script(_GUARD)

    def acquire(self) -> int | None:
        """Take the lease if nobody holds it: the new fencing token, else None."""
        fence = int(self._acquire(keys=[self.key, self.fence_key], args=[self.holder, self.ttl_ms]))
        return fence or None

    def renew(self, fence: int) -> bool:
        """Extend the lease by ``ttl_ms`` if it is still this holder's term ``fence``."""
        args: list[str | int] = [self.holder, fence, self.ttl_ms]
        return bool(self._renew(keys=[self.key, self.fence_key], args=args))

    def release(self, fence: int) -> bool:
        """Give the lease up if it is still this holder's term ``fence``."""
        return bool(self._release(keys=[self.key, self.fence_key], args=[self.holder, fence]))

    def guard(self, fence: int) -> bool:
        """True while term ``fence`` of this holder is the current one (no side effects)."""
        return bool(self._guard(keys=[self.key, self.fence_key], args=[self.holder, fence]))

    def info(self) -> LeaseInfo:
        pipe = self.client.pipeline(transaction=True)
        pipe.get(self.key)
        pipe.get(self.fence_key)
        pipe.pttl(self.key)
        holder, fence, ttl = pipe.execute()
        return LeaseInfo(
            holder=None if holder is None else _text(holder),
            fence=0 if fence is None else int(fence),
            ttl_ms=None if holder is None or int(ttl) < 0 else int(ttl),
        )


class NotLeader(ProviderError):
    """A scaling action was refused: this replica does not hold the lease (any more)."""


class Leadership:
    """Keeps (or waits for) the lease in the background; ``is_leader()`` for the service.

    Every ``renew_every_s`` (default a third of the ttl) the holder renews, others try
    to acquire. Leadership counts locally until ``sent + ttl * (1 - safety)``, where
    ``sent`` is when the last successful acquire or renew was sent (``monotonic``):
    never longer than Redis keeps the lease, whatever the latency of the answer.
    """

    def __init__(
        self,
        lease: Lease,
        *,
        renew_every_s: float | None = None,
        safety: float = 0.2,
        monotonic: Callable[[], float] = time.monotonic,
        on_change: Callable[[bool, int | None], None] | None = None,
    ) -> None:
        if not 0 <= safety < 1:
            raise ValueError(f"safety must be in [0, 1), not {safety}")
        self.lease = lease
        ttl_s = lease.ttl_ms / 1000
        self.renew_every_s = renew_every_s if renew_every_s is not None else ttl_s / 3
        self.valid_s = ttl_s * (1 - safety)
        if self.renew_every_s >= self.valid_s:
            raise ValueError("renew_every_s must be shorter than the lease's safe validity")
        self.on_change = on_change
        self.terms = 0
        """How many times this replica became the leader."""
        self._monotonic = monotonic
        self._fence: int | None = None
        self._until = -float("inf")
        self._task: asyncio.Task[None] | None = None

    # -- what the service reads ------------------------------------------------------------

    def is_leader(self) -> bool:
        return self._fence is not None and self._monotonic() < self._until

    @property
    def fence(self) -> int | None:
        """This term's fencing token while leader, else None."""
        return self._fence if self.is_leader() else None

    def guard(self) -> int:
        """The fencing token, after checking in Redis that this term is still current.

        Raises :class:`NotLeader` (a :class:`ProviderError`) otherwise. Blocking: call it
        in a worker thread from async code.
        """
        fence = self.fence
        if fence is None:
            raise NotLeader("this replica is not the leader")
        try:
            current = self.lease.guard(fence)
        except redis.RedisError as e:
            raise NotLeader(f"cannot confirm the lease ({type(e).__name__})") from e
        if not current:
            self._lost()
            raise NotLeader(f"the lease of term {fence} was lost")
        return fence

    # -- keeping the lease -----------------------------------------------------------------

    def step(self) -> bool:
        """One renew (while leading) or acquire attempt; whether this replica leads after.

        Blocking (one Redis round trip): run it in a worker thread from async code.
        """
        sent = self._monotonic()
        try:
            if self._fence is not None:
                if self.lease.renew(self._fence):
                    self._until = sent + self.valid_s
                else:
                    self._lost()
            else:
                fence = self.lease.acquire()
                if fence is not None:
                    self._fence = fence
                    self._until = sent + self.valid_s
                    self.terms += 1
                    log.info("leader now (fencing token %d)", fence)
                    self._changed()
        except redis.RedisError as e:
            # Keep the term until its local deadline: a brief blip does not hand over, and
            # the deadline is earlier than Redis' expiry, so nobody else leads meanwhile.
            log.warning("lease %s unreachable (%s)", self.lease.key, type(e).__name__)
        if self._fence is not None and not self.is_leader():
            self._lost()
        return self.is_leader()

    async def begin(self) -> None:
        """Try for the lease at once (a lone replica leads from its start), then keep it
        in a task of the running loop."""
        await asyncio.to_thread(self.step)
        self.start()

    def start(self) -> None:
        """Keep the lease in a task of the running loop."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="leadership")

    async def stop(self, *, release: bool = True) -> None:
        """Stop keeping the lease; ``release`` hands it over at once (else it expires)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        fence = self._fence
        self._fence, self._until = None, -float("inf")
        if release and fence is not None:
            with contextlib.suppress(redis.RedisError):
                await asyncio.to_thread(self.lease.release, fence)
            self._changed()

    async def _run(self) -> None:
        while True:
            await asyncio.to_thread(self.step)
            await asyncio.sleep(self.renew_every_s)

    def _lost(self) -> None:
        if self._fence is None:
            return
        log.warning("no longer the leader (term %d ended)", self._fence)
        self._fence, self._until = None, -float("inf")
        self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self.is_leader(), self._fence)


class FencedProvider:
    """A node provider that acts only for the current leader: each create and terminate
    first confirms this replica's term in Redis (:meth:`Leadership.guard`) and otherwise
    raises :class:`NotLeader`, so the live shell counts the request failed.

    ``actions`` counts the actions let through by kind; ``last_fence`` is the token the
    last one carried.
    """

    def __init__(self, provider: NodeProvider, leadership: Leadership) -> None:
        self.provider = provider
        self.leadership = leadership
        self.breaker = getattr(provider, "breaker", None)
        """The wrapped provider's circuit breaker, if any (the live service reports it)."""
        self.actions: Counter[str] = Counter()
        self.last_fence: int | None = None

    async def create(self) -> str:
        fence = await asyncio.to_thread(self.leadership.guard)
        self.actions["create"] += 1
        self.last_fence = fence
        return await self.provider.create()

    async def terminate(self, node_id: str) -> bool:
        fence = await asyncio.to_thread(self.leadership.guard)
        self.actions["terminate"] += 1
        self.last_fence = fence
        return await self.provider.terminate(node_id)

    async def list_nodes(self) -> list[ProviderNode] | None:
        return await self.provider.list_nodes()

    async def aclose(self) -> None:
        await self.provider.aclose()


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value
