"""``provisioner simulate``: workloads as trace files or live on pub/sub."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Adds the command (filled in by the workloads work)."""
