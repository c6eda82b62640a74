"""Histories: the user events of one window, from a generated workload or a recorded trace.

Node events in a trace are dropped: the bench simulates its own nodes. :func:`check_separate`
keeps the model's training history apart from the scored one (:class:`TrainingLeak`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from features.events import UserActivity, UserConnect, UserDisconnect, UserEvent
from simulation.bench.errors import BenchError, TrainingLeak
from simulation.workloads import DEFAULT_START, generate


@dataclass(frozen=True)
class History:
    """User events in ``[start, end)``, sorted by time."""

    events: tuple[UserEvent, ...]
    start: float
    end: float
    source: str
    """What the events are: ``workload seed, seed 1`` or ``trace week.jsonl``."""

    def __post_init__(self) -> None:
        if not self.end > self.start:
            raise BenchError(f"{self.source}: empty window {self.start} .. {self.end}")

    @property
    def hours(self) -> float:
        return (self.end - self.start) / 3600.0

    @property
    def users(self) -> frozenset[str]:
        return frozenset(e.user_id for e in self.events)

    @property
    def connects(self) -> int:
        return sum(1 for e in self.events if isinstance(e, UserConnect))

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "start": self.start,
            "end": self.end,
            "hours": self.hours,
            "events": len(self.events),
            "users": len(self.users),
            "connects": self.connects,
        }


def workload_history(
    workload: str,
    *,
    hours: float,
    seed: int,
    users: int | None = None,
    start: float = DEFAULT_START,
) -> History:
    """The events of a generated workload."""
    events = tuple(generate(workload, hours=hours, seed=seed, start=start, users=users))
    source = f"workload {workload}, seed {seed}" + (f", {users} users" if users else "")
    return History(events, start, start + hours * 3600.0, source)


def trace_history(path: Path, *, hours: float | None = None, now: float | None = None) -> History:
    """The user events of a trace file (``.jsonl`` or ``.parquet``), from its first event.

    ``hours`` keeps only that many hours from the first event (default: all of it; the
    window then ends one second after the last event). Node events are dropped; lines that
    are not events are skipped (:class:`BenchError` when nothing is left).
    """
    from features.trace import RejectedLine, read_jsonl, read_parquet
    from features.transfer import UnsupportedFormat, trace_format

    try:
        kind = trace_format(path)
    except UnsupportedFormat as e:
        raise BenchError(str(e)) from e
    if not path.is_file():
        raise BenchError(f"no trace file at {path}")
    clock = time.time() if now is None else now
    raw = read_parquet(path) if kind == "parquet" else read_jsonl(path, now=clock)
    events = [
        e
        for e in raw
        if not isinstance(e, RejectedLine)
        and isinstance(e, UserActivity | UserConnect | UserDisconnect)
    ]
    if not events:
        raise BenchError(f"{path}: no user events")
    events.sort(key=lambda e: e.ts)
    start = math.floor(events[0].ts)
    if hours is not None:
        end = start + hours * 3600.0
        events = [e for e in events if e.ts < end]
    else:
        end = math.floor(events[-1].ts) + 1.0
    return History(tuple(events), start, end, f"trace {path.name}")


def split_history(history: History, fraction: float) -> tuple[History, History]:
    """``(earlier, later)``: the first ``fraction`` of the window, and the rest."""
    if not 0.0 < fraction < 1.0:
        raise BenchError(f"the training fraction must be in (0, 1), not {fraction}")
    cut = history.start + fraction * (history.end - history.start)
    return split_at(history, cut, f"{fraction:g}")


def split_at(history: History, cut: float, label: str) -> tuple[History, History]:
    """``(earlier, later)``: the events before ``cut``, and the others."""
    earlier = tuple(e for e in history.events if e.ts < cut)
    later = tuple(e for e in history.events if e.ts >= cut)
    return (
        History(earlier, history.start, cut, f"{history.source} before {label}"),
        History(later, cut, history.end, f"{history.source} from {label}"),
    )


def check_separate(train: History, scored: History) -> None:
    """:class:`TrainingLeak` unless every training event precedes the scored window or no
    user appears in both (so that no scored event can be a training event)."""
    if not train.events:
        raise BenchError(f"{train.source}: no events to train on")
    last_train = max(e.ts for e in train.events)
    if last_train < scored.start:
        return
    shared = train.users & scored.users
    if shared:
        raise TrainingLeak(
            f"the training events ({train.source}, up to {last_train}) reach into the scored "
            f"window ({scored.source}, from {scored.start}) and share {len(shared)} users: "
            "the model would be scored on events it was trained on"
        )


def is_prefix(train: History, scored: History) -> bool:
    """True when ``train`` is an earlier stretch of the same users' events."""
    return bool(train.events) and train.end <= scored.start and bool(train.users & scored.users)
