"""What the live shell needs from a node provider, whichever one it is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class ProviderNode:
    """A node as the provider lists it."""

    id: str
    status: str
    """``booting``, ``ready`` or ``terminated``."""
    created_at: float | None = None
    ready_at: float | None = None
    """When it became ready (None: not ready, or the provider does not say)."""


class ProviderError(RuntimeError):
    """The provider could not do what was asked (after its retries)."""


class CircuitOpen(ProviderError):
    """Refused without calling the provider: its circuit breaker is open (it keeps failing)."""


class NodeProvider(Protocol):
    """Creates and terminates nodes; their state arrives as ``node:status`` events."""

    async def create(self) -> str:
        """Request a new node; its id. Raises ProviderError."""
        ...

    async def terminate(self, node_id: str) -> bool:
        """Terminate a node; False when the provider does not know it. Raises ProviderError."""
        ...

    async def list_nodes(self) -> list[ProviderNode] | None:
        """Every node the provider holds, or None when it cannot list them."""
        ...

    async def aclose(self) -> None: ...
