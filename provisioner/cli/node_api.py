"""``provisioner node-api``: the seed-compatible node API simulator."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Adds the command (filled in by the node API work)."""
