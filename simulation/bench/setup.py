"""The bench's setup: the scored history, the boot times, the service config and, when a
policy needs it, the model trained on a separate history.

The boot times follow the request's boot schedule (``SPEC[,SPEC@HOURS...]``), whose hours
count from the start of the *scored* window: a history before it (``history_hours``, the
earlier part of a split trace) is not simulated on the fleet, and does not count.

The model's training history is, by the request:

- ``train_trace``: another trace file;
- ``train_fraction``: the earlier part of the scored trace (the scored part is the rest);
- ``history_hours``: the same users' events in the hours before the scored window of a
  generated workload (the workload is generated from its start for the history and the
  scored hours together, and scored after the history);
- otherwise the same workload under another seed (``seed + TRAIN_SEED_OFFSET``) for
  ``train_hours`` (default: the scored hours).

When the training history is an earlier stretch of the same users (a trace split or
``history_hours``), it is also the *warmup*: the online features of every engine policy are
first fed with it, as the live service would have read its event log; no metric counts it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from service.config import ServiceConfig
from simulation.bench.errors import BenchError
from simulation.bench.history import (
    History,
    check_separate,
    is_prefix,
    split_at,
    split_history,
    trace_history,
    workload_history,
)
from simulation.bench.model import TrainedModel, bench_horizon, train_model
from simulation.bench.progress import Progress
from simulation.bench.request import BenchRequest
from simulation.nodes.boot import BootSchedule, parse_boot_schedule
from simulation.runner import DEFAULT_HOURS

TRAIN_SEED_OFFSET: Final = 1000
"""The model's default training history: the same workload under ``seed + 1000``."""


@dataclass(frozen=True)
class BenchSetup:
    """Everything a policy run needs besides its spec."""

    scored: History
    boot: BootSchedule
    """Hour 0 at the start of the scored window."""
    seed: int
    config: ServiceConfig
    model: TrainedModel | None = None
    warmup: History | None = None
    """Events that precede the scored window (fed to the engine's features only)."""


def prepare(request: BenchRequest, *, progress: Progress | None = None) -> BenchSetup:
    """Load (or generate) the scored history, and train the model when a policy needs it."""
    try:
        schedule = parse_boot_schedule(request.boot)
    except ValueError as e:
        raise BenchError(str(e)) from e
    config = request.config()
    train: History | None = None
    if request.trace is not None:
        scored = trace_history(request.trace, hours=request.hours)
        if request.train_fraction is not None:
            train, scored = split_history(scored, request.train_fraction)
    else:
        hours = DEFAULT_HOURS if request.hours is None else request.hours
        history = request.history_hours or 0.0
        try:
            scored = workload_history(
                request.workload, hours=history + hours, seed=request.seed, users=request.users
            )
        except ValueError as e:
            raise BenchError(str(e)) from e
        if history:
            train, scored = split_at(scored, scored.start + history * 3600.0, f"{history:g} h")
    boot = _scored_boot(schedule, scored)
    model: TrainedModel | None = None
    if request.wants_model:
        if train is None and request.train_trace is not None:
            train = trace_history(request.train_trace, hours=request.train_hours)
        if train is None:
            train = workload_history(
                request.workload,
                hours=request.train_hours if request.train_hours is not None else scored.hours,
                seed=request.seed + TRAIN_SEED_OFFSET,
                users=request.users,
                start=scored.start,
            )
        check_separate(train, scored)
        model = train_model(
            train,
            horizon=bench_horizon(boot, request.seed, config),
            progress=progress,
            model_type=request.model_type,
        )
    warmup = train if train is not None and is_prefix(train, scored) else None
    return BenchSetup(scored, boot, request.seed, config, model, warmup)


def _scored_boot(schedule: BootSchedule, scored: History) -> BootSchedule:
    """``schedule`` with hour 0 at the start of the scored window; :class:`BenchError` when a
    change comes at or after its end (it would never apply)."""
    late = [c for c in schedule.changes if c.hours >= scored.hours]
    if late:
        raise BenchError(
            f"boot schedule {str(schedule)!r}: the change at hour {late[0].hours:g} comes at or "
            f"after the end of the scored window ({scored.hours:g} h); hours count from the "
            "scored window's start"
        )
    return schedule.starting_at(scored.start)
