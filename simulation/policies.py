"""Baseline policies as decision cores, and the policy specs the bench understands.

A decision core is what :func:`simulation.runner.run` drives: events and ticks in, commands
out, with the shell reporting created and deleted nodes back (``service.core``). Our
:class:`service.engine.Engine` is one; this module adds two baselines on the same skeleton
(``service.core.PoolCore``), both pure (no I/O, no clock, no randomness) and both keeping their
state in a :class:`service.pool.NodePool`, so that allocation, waits and the metrics of every
policy are those of the code that ships (``service.service_level``).

- :class:`StaticPolicy` (``static:K``): keep ``K`` warm nodes (idle ready plus booting, minus
  the users waiting for them), reconciled after every event and tick: a node taken by a
  connect is replaced at once, a surplus node (freed by a disconnect) is terminated at
  once, in the order every core terminates (``service.pool.PoolView.terminable``: booting ones
  first, newest first, then idle ones, idle the longest first).
- :class:`SeedRulePolicy` (``seed-rule``): the original service's rules, exactly as the
  issue states them. Every tick (10 s), with ``ready`` the idle ready nodes (booting nodes
  are not counted) and ``score`` the sum of the staged scores (``models.heuristic.stage``:
  0.9/0.6/0.3/0 for activity within 30 s/2 min/5 min/older) of the users not connected:

  * up one node when ``score > 0.7`` and ``ready < 2``, or when the *active* users who are
    not connected (staged score above 0: activity within 5 min) outnumber ``2 * ready``
    and ``ready < 5``;
  * otherwise down one node (the one idle the longest) when ``ready > 4``,
    ``score < 0.3`` and that node has idled ``max_idle_s`` (10 min) or more;
  * nothing on events: a user who finds no ready node waits for the next one a tick brings.

  Every tick's inputs and action are appended to :attr:`SeedRulePolicy.log`.

:func:`parse_policies` reads ``static:4,seed-rule,heuristic,model,oracle`` (``heuristic``
and ``model`` take an optional service-level target, ``model:0.995``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import numpy as np

from features.events import UserActivity, UserConnect, UserDisconnect
from models.heuristic import STAGES, stage
from service.commands import Command
from service.config import ServiceConfig
from service.core import PoolCore
from service.pool import ConnectResult
from service.user_table import UserTable

SEED_UP_SCORE: Final = 0.7
"""Seed rule: scale up when the summed staged score exceeds this (with few ready nodes)."""
SEED_MIN_READY: Final = 2
SEED_ACTIVE_FACTOR: Final = 2
"""Seed rule: scale up when active not-connected users outnumber this many per ready node..."""
SEED_ACTIVE_MAX_READY: Final = 5
"""... and fewer than this many nodes are ready."""
SEED_DOWN_SCORE: Final = 0.3
SEED_DOWN_MIN_READY: Final = 5
"""Seed rule: scale down only with more than 4 (at least this many) ready nodes."""
ACTIVE_WITHIN_S: Final = STAGES[-1][0]
"""A user is *active* while its staged score is above 0: activity within 5 min."""


class StaticPolicy(PoolCore):
    """``static:K``: exactly ``k`` warm nodes at all times (within the node budget)."""

    def __init__(self, k: int, config: ServiceConfig | None = None) -> None:
        if k < 0:
            raise ValueError(f"static pool size must be >= 0, not {k}")
        super().__init__(config)
        self.k = k

    def _on_node(self, now: float) -> list[Command]:
        return self.tick(now)

    def _on_connect(self, event: UserConnect, result: ConnectResult, now: float) -> list[Command]:
        return self.tick(now)

    def _on_disconnect(
        self, event: UserDisconnect, session_s: float | None, now: float
    ) -> list[Command]:
        return self.tick(now)

    def tick(self, now: float) -> list[Command]:
        counts = self.pool.counts()
        warm = counts.warm
        if warm < self.k:
            room = self.config.max_nodes - counts.live
            return [self._request(now) for _ in range(max(0, min(self.k - warm, room)))]
        if warm > self.k:
            surplus = self.pool.view().terminable()[: warm - self.k]
            return [self._terminate(node_id, now) for node_id in surplus]
        return []


@dataclass(frozen=True, slots=True)
class SeedDecision:
    """One tick of the seed rule: what it saw and what it did."""

    at: float
    ready: int
    score: float
    """Summed staged score of the users not connected."""
    active: int
    """Users not connected with activity within 5 min."""
    action: str
    """``up``, ``down`` or ``hold``."""
    node_id: str | None = None
    """The node terminated by a ``down``."""


class SeedRulePolicy(PoolCore):
    """``seed-rule``: the original service's rules (see the module doc)."""

    def __init__(self, config: ServiceConfig | None = None) -> None:
        super().__init__(config)
        self.users = UserTable()
        """Seen: activity (connects and disconnects only say who is connected)."""
        self.log: list[SeedDecision] = []

    def _on_activity(self, event: UserActivity, now: float) -> list[Command]:
        row = self.users.row(event.user_id)
        self.users.last_seen[row] = max(self.users.last_seen[row], event.ts)
        return []

    def _on_connect(self, event: UserConnect, result: ConnectResult, now: float) -> list[Command]:
        self._note_connected(event.user_id)
        return []

    def _on_disconnect(
        self, event: UserDisconnect, session_s: float | None, now: float
    ) -> list[Command]:
        self._note_connected(event.user_id)
        return []

    def _note_connected(self, user_id: str) -> None:
        self.users.connected[self.users.row(user_id)] = self.pool.is_connected(user_id)

    def inputs(self, now: float) -> tuple[int, float, int]:
        """``(ready, score, active)`` as the rule sees them at ``now``."""
        n = len(self.users)
        seen = self.users.last_seen[:n]
        free = ~self.users.connected[:n] & np.isfinite(seen)
        scores = stage(np.maximum(now - seen[free], 0.0))
        return self.pool.counts().ready, float(scores.sum()), int(np.count_nonzero(scores > 0))

    def tick(self, now: float) -> list[Command]:
        ready, score, active = self.inputs(now)
        commands: list[Command] = []
        node_id: str | None = None
        room = self.config.max_nodes - self.pool.counts().live
        up = (score > SEED_UP_SCORE and ready < SEED_MIN_READY) or (
            active > SEED_ACTIVE_FACTOR * ready and ready < SEED_ACTIVE_MAX_READY
        )
        if up and room > 0:
            commands.append(self._request(now))
            action = "up"
        elif ready >= SEED_DOWN_MIN_READY and score < SEED_DOWN_SCORE:
            oldest, since = self.pool.view().idle[0]
            if now - since >= self.config.max_idle_s:
                commands.append(self._terminate(oldest, now))
                node_id, action = oldest, "down"
            else:
                action = "hold"
        else:
            action = "hold"
        self.log.append(SeedDecision(now, ready, score, active, action, node_id))
        return commands


# -- specs ---------------------------------------------------------------------------------


class PolicyKind(StrEnum):
    STATIC = "static"
    SEED_RULE = "seed-rule"
    HEURISTIC = "heuristic"
    MODEL = "model"
    ORACLE = "oracle"


DEFAULT_POLICIES: Final = "static:4,seed-rule,heuristic,model,oracle"
_FORMS: Final = "static:K, seed-rule, heuristic[:TARGET], model[:TARGET] or oracle"


class BadPolicySpec(ValueError):
    """A policy spec the bench does not understand; the message says what is expected."""


@dataclass(frozen=True, slots=True)
class PolicySpec:
    kind: PolicyKind
    k: int | None = None
    """``static``: the warm pool size."""
    target: float | None = None
    """``heuristic`` / ``model``: the service-level target (None: the config's default)."""

    @property
    def name(self) -> str:
        """The canonical spec (``static:4``, ``model:0.995``, ``oracle``)."""
        if self.k is not None:
            return f"{self.kind.value}:{self.k}"
        if self.target is not None:
            return f"{self.kind.value}:{self.target:g}"
        return self.kind.value

    def __str__(self) -> str:
        return self.name


def parse_policy(spec: str) -> PolicySpec:
    """One spec: ``static:K``, ``seed-rule``, ``heuristic[:TARGET]``, ``model[:TARGET]``,
    ``oracle``; :class:`BadPolicySpec` saying what is wrong otherwise."""
    text = spec.strip()
    name, sep, arg = text.partition(":")
    try:
        kind = PolicyKind(name.strip().lower())
    except ValueError as e:
        raise BadPolicySpec(f"unknown policy {text!r}; expected {_FORMS}") from e
    arg = arg.strip()
    if kind is PolicyKind.STATIC:
        if not arg:
            raise BadPolicySpec(f"{text!r}: static needs a pool size, e.g. static:4")
        try:
            k = int(arg)
        except ValueError as e:
            raise BadPolicySpec(f"{text!r}: pool size {arg!r} is not a whole number") from e
        if k < 0:
            raise BadPolicySpec(f"{text!r}: pool size must be >= 0")
        return PolicySpec(kind, k=k)
    if kind in (PolicyKind.HEURISTIC, PolicyKind.MODEL) and sep:
        try:
            target = float(arg)
        except ValueError as e:
            raise BadPolicySpec(f"{text!r}: target {arg!r} is not a number") from e
        if not 0.0 < target < 1.0:
            raise BadPolicySpec(f"{text!r}: target must be in (0, 1), e.g. {kind.value}:0.995")
        return PolicySpec(kind, target=target)
    if sep:
        raise BadPolicySpec(f"{text!r}: {kind.value} takes no argument")
    return PolicySpec(kind)


def parse_policies(specs: str | Iterable[str]) -> tuple[PolicySpec, ...]:
    """A comma-separated list (or an iterable) of specs, in order, without repeats."""
    parts = specs.split(",") if isinstance(specs, str) else list(specs)
    parsed: list[PolicySpec] = []
    for part in parts:
        if not part.strip():
            raise BadPolicySpec(f"empty policy in {specs!r}; expected {_FORMS}")
        policy = parse_policy(part)
        if policy in parsed:
            raise BadPolicySpec(f"policy {policy.name!r} is listed twice")
        parsed.append(policy)
    if not parsed:
        raise BadPolicySpec(f"no policy given; expected {_FORMS}")
    return tuple(parsed)
