"""Helpers shared by the command modules: console, settings access, time arguments."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from types import FrameType
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from provisioner.settings import Settings

console = Console(stderr=True)
"""Human output (progress, tables, errors) goes to stderr; stdout carries JSON for scripts."""


def literal_help(text: str) -> str:
    """``text`` as a typer help string that shows it as written.

    Typer renders help as rich markup, in which ``[a...]`` is a tag and ``:name:`` an emoji
    code (``uniform:A:B`` showed as ``uniform🅰B``: ``:A:`` is the code of 🅰). Brackets are
    escaped, and an empty tag after each colon keeps two colons from enclosing a code (rich
    replaces codes within each stretch of text between tags).
    """
    return escape(text).replace(":", ":[i][/i]")


def settings_of(ctx: typer.Context) -> Settings:
    root = ctx.find_root()
    assert isinstance(root.obj, Settings)
    return root.obj


def parse_time(value: str | None) -> float | None:
    """Unix seconds, or an ISO 8601 date/time (UTC when it names no zone)."""
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as e:
        raise typer.BadParameter(f"{value!r} is neither unix seconds nor ISO 8601") from e
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


@contextmanager
def graceful_signals() -> Iterator[None]:
    """Keep SIGINT/SIGTERM from killing us after uvicorn's graceful shutdown.

    uvicorn captures the signals while serving and re-raises them afterwards under the
    handlers that were in place before; ours ignore that, so that what the command holds
    (the embedded Redis, the final report) is stopped and printed cleanly.
    """

    def ignore(signum: int, frame: FrameType | None) -> None:
        pass

    previous = {sig: signal.signal(sig, ignore) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def print_json(data: dict[str, Any]) -> None:
    """One JSON line on stdout: the machine-readable summary of a command."""
    typer.echo(json.dumps(data, sort_keys=True))
