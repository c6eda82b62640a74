"""How the bench reports progress: the callback it is handed, and a replay that calls it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Final

from features.events import UserEvent
from simulation.bench.history import History

PROGRESS_EVERY: Final = 5000
"""Events between two progress reports."""

Progress = Callable[[str, float, float], None]
"""``progress(label, done, total)``: virtual seconds replayed of a policy run (labelled by
the policy), or steps of the training (``train model``: dataset, then model)."""


def reporting(history: History, label: str, progress: Progress) -> Iterator[UserEvent]:
    """The events of ``history``, reporting the virtual time replayed as they are read."""
    total = history.end - history.start
    progress(label, 0.0, total)
    for n, event in enumerate(history.events, start=1):
        if n % PROGRESS_EVERY == 0:
            progress(label, event.ts - history.start, total)
        yield event
    progress(label, total, total)
