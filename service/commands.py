"""What the decision core asks its shell to do: create a node, terminate a node.

The shell executes each command against the node API and reports back:
``RequestNode`` -> ``Engine.node_created(token, node_id, now)`` or
``Engine.request_failed(token, now)``; ``TerminateNode`` -> the node's ``terminated``
status event, or ``Engine.node_deleted(node_id, now)`` once the delete is done.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RequestNode:
    """Create one node. ``token`` names the request until the node API gives an id."""

    token: str


@dataclass(frozen=True, slots=True)
class TerminateNode:
    """Terminate the node ``node_id`` (an idle ready or a booting node, never an allocated one)."""

    node_id: str


Command = RequestNode | TerminateNode
