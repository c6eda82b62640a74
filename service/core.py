"""The skeleton every decision core shares.

A decision core takes events and ticks and returns commands (``service.commands``); its shell
(the live service, or the bench's virtual-time runner) executes them and reports back what
came of them. :class:`DecisionCore` is what a shell drives. :class:`PoolCore` is the base of
every core the project has (the engine, ``service.engine.Engine``, and the bench's baselines,
``simulation.policies``): it keeps the state in a :class:`service.pool.NodePool`, so that the
allocation, the waits and the metrics of every core are those of the code that ships. It
applies each event to the pool (and records each counted connect's outcome in its
``connect_windows``, ``service.connect_windows``), then hands it to the core's hooks; it
names its requests (``req-0``, ``req-1``, ...) and marks the nodes it terminates; and it
turns what the shell found out (a reconciliation with the provider, a restart, a
follower's commands it will not execute) into the pool's reports, returning the commands
that follow.

Pure, as every core: no I/O, no wall clock, no randomness; ``now`` comes with every call.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Protocol

from features.events import (
    Event,
    NodeStatus,
    NodeStatusChanged,
    UserActivity,
    UserConnect,
    UserDisconnect,
)
from service.commands import Command, RequestNode, TerminateNode
from service.config import ServiceConfig
from service.connect_windows import ConnectWindows
from service.pool import ConnectResult, NodePool
from service.reconcile import Reconciliation
from service.service_level import MetricsReport


class DecisionCore(Protocol):
    """What a shell drives: events and ticks in, commands out, and the shell's reports."""

    @property
    def config(self) -> ServiceConfig: ...

    def on_event(self, event: Event, now: float) -> list[Command]: ...

    def tick(self, now: float) -> list[Command]: ...

    def node_created(self, token: str, node_id: str, now: float) -> None: ...

    def request_failed(self, token: str, now: float) -> None: ...

    def node_deleted(self, node_id: str, now: float) -> None: ...

    def metrics(self, now: float) -> MetricsReport: ...


class PoolCore(ABC):
    """A decision core whose state is a node pool; subclasses decide in the hooks and ``tick``."""

    def __init__(self, config: ServiceConfig | None = None, pool: NodePool | None = None) -> None:
        self._config = config if config is not None else ServiceConfig()
        self.pool = pool if pool is not None else NodePool()
        self.connect_windows = ConnectWindows()
        """Each counted connect's outcome, for the instant rate per window of time."""
        self._next_token = 0

    @property
    def config(self) -> ServiceConfig:
        return self._config

    # -- events and ticks ------------------------------------------------------------------

    def on_event(self, event: Event, now: float) -> list[Command]:
        """Apply ``event`` to the pool, then let the core's hook answer it."""
        if isinstance(event, NodeStatusChanged):
            self.pool.node_status(event.node_id, event.status, now)
            return self._on_node(now)
        if isinstance(event, UserConnect):
            result = self.pool.connect(event.user_id, now)
            if result is not ConnectResult.DUPLICATE:
                self.connect_windows.record(now, instant=result is ConnectResult.INSTANT)
            return self._on_connect(event, result, now)
        if isinstance(event, UserDisconnect):
            started = self.pool.session_start(event.user_id)
            ended = self.pool.disconnect(event.user_id, now)
            session_s = now - started if ended and started is not None else None
            return self._on_disconnect(event, session_s, now)
        assert isinstance(event, UserActivity)
        return self._on_activity(event, now)

    @abstractmethod
    def tick(self, now: float) -> list[Command]: ...

    # -- the shell's reports ---------------------------------------------------------------

    def node_created(self, token: str, node_id: str, now: float) -> None:
        self.pool.created(token, node_id, now)

    def request_failed(self, token: str, now: float) -> None:
        """The create failed; the core asks again when it still needs the node."""
        self.pool.request_failed(token, now)

    def node_deleted(self, node_id: str, now: float) -> None:
        self.pool.deleted(node_id, now)

    def reconciled(self, plan: Reconciliation, now: float) -> list[Command]:
        """Apply a reconciliation with the provider (``service.reconcile``): adopt the nodes
        it lists, mark ready the ones whose event was lost, forget the gone ones, fail the
        requests that got no node in time. Its ``terminate`` list is the shell's to redo."""
        commands: list[Command] = []
        for node_id, status in plan.adopt:
            commands += self.on_event(NodeStatusChanged(now, node_id, status), now)
        for node_id in plan.ready:
            commands += self.on_event(NodeStatusChanged(now, node_id, NodeStatus.READY), now)
        for node_id in plan.forget:
            self.node_deleted(node_id, now)
        for token in plan.expire:
            self.request_failed(token, now)
        return commands

    def expire_requests(self, now: float) -> list[str]:
        """Fail every request still waiting for its node (after a restart none has a shell
        task to finish it); the tokens failed."""
        tokens = [n.token for n in self.pool.nodes() if n.node_id is None and n.token]
        for token in tokens:
            self.request_failed(token, now)
        return tokens

    def withdraw(self, commands: Iterable[Command], now: float) -> None:
        """The shell will not execute ``commands`` (it does not lead): their requests fail,
        nothing was created; the nodes they terminate stay terminating, for the leader's
        reconciliation to finish."""
        for command in commands:
            if isinstance(command, RequestNode):
                self.request_failed(command.token, now)

    # -- reading ---------------------------------------------------------------------------

    def metrics(self, now: float) -> MetricsReport:
        return self.pool.report(now)

    # -- for subclasses --------------------------------------------------------------------

    def _on_node(self, now: float) -> list[Command]:
        """After a ``node:status`` event."""
        return []

    def _on_connect(self, event: UserConnect, result: ConnectResult, now: float) -> list[Command]:
        """After a connect (``result``: what the pool did with it)."""
        return []

    def _on_disconnect(
        self, event: UserDisconnect, session_s: float | None, now: float
    ) -> list[Command]:
        """After a disconnect (``session_s``: the length of the session it ended, if any)."""
        return []

    def _on_activity(self, event: UserActivity, now: float) -> list[Command]:
        return []

    def _request(self, now: float) -> RequestNode:
        token = f"req-{self._next_token}"
        self._next_token += 1
        self.pool.request(token, now)
        return RequestNode(token)

    def _terminate(self, node_id: str, now: float) -> TerminateNode:
        self.pool.terminate(node_id, now)
        return TerminateNode(node_id)
