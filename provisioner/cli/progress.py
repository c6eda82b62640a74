"""Progress of a long command on stderr: bars on a terminal, plain lines otherwise.

On a terminal each task (a stage, a policy run, a file) gets a rich progress bar. In a log
or a pipe (CI, ``2> file``) a bar would show nothing until the end, so the same reports
become lines such as ``bench heuristic: 35% (8.4 h of 24 h simulated)``: at most one every
:data:`LINE_EVERY_S` seconds, and one when a task completes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from provisioner.cli.common import console

LINE_EVERY_S: Final = 5.0
"""Least time between two plain progress lines (completions excepted)."""

Figures = Callable[[float, float], str]
"""``figures(done, total)``: the amounts as a line shows them (``8.4 h of 24 h simulated``)."""


TRAINING_STAGES: Final[dict[str, str]] = {
    "read": "read events",
    "read_partitions": "read events (export partitions, on the Dask workers)",
    "features": "features (rows)",
    "partitions": "features (user partitions, on Dask)",
    "lightgbm": "LightGBM (trees)",
    "hazard": "hazard model (trees)",
    "baseline": "baseline",
    "calibrate": "calibrate",
    "log": "log to MLflow",
    "promote": "promotion gates",
    "holdout": "holdout (rows)",
}
"""Shown names of the stages of training and promotion (``training.retrain``)."""


def counted(done: float, total: float) -> str:
    return f"{done:,.0f} of {total:,.0f}"


def in_bytes(done: float, total: float) -> str:
    return f"{done / 1e6:,.1f} of {total / 1e6:,.1f} MB"


def virtual_hours(done: float, total: float) -> str:
    return f"{done:.1f} h of {total:g} h simulated"


def virtual_seconds(done: float, total: float) -> str:
    return virtual_hours(done / 3600.0, total / 3600.0)


@dataclass
class _Task:
    name: str
    figures: Figures
    done: float = 0.0
    total: float | None = None
    bar: TaskID | None = None
    finished: bool = False


class JobProgress:
    """``progress(label, done, total)`` and ``progress.advance(label, amount)`` for the
    tasks of one command, shown as bars on a terminal and as plain lines otherwise.

    ``title`` starts every plain line (``bench``); ``figures`` reads the amounts, unless
    ``figures_of`` names other figures for a label; ``names`` gives labels their shown name.
    """

    def __init__(
        self,
        title: str,
        figures: Figures = counted,
        *,
        figures_of: Mapping[str, Figures] | None = None,
        names: Mapping[str, str] | None = None,
        out: Console = console,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.title = title
        self._figures = figures
        self._figures_of = dict(figures_of or {})
        self._names = dict(names or {})
        self._out = out
        self._clock = clock
        self._tasks: dict[str, _Task] = {}
        self._last_line = -LINE_EVERY_S
        self._bars: Progress | None = None
        if out.is_terminal:
            self._bars = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[figures]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=out,
            )

    def __enter__(self) -> JobProgress:
        if self._bars is not None:
            self._bars.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._bars is not None:
            self._bars.stop()

    def __call__(self, label: str, done: float, total: float | None) -> None:
        task = self._task(label)
        task.done, task.total = done, total
        self._show(task)

    def advance(self, label: str, amount: float) -> None:
        task = self._task(label)
        task.done += amount
        self._show(task)

    def _task(self, label: str) -> _Task:
        task = self._tasks.get(label)
        if task is None:
            figures = self._figures_of.get(label, self._figures)
            task = self._tasks[label] = _Task(self._names.get(label, label), figures)
            if self._bars is not None:
                task.bar = self._bars.add_task(task.name, total=None, figures="")
        return task

    def _show(self, task: _Task) -> None:
        total = task.total
        figures = task.figures(task.done, total) if total is not None else f"{task.done:,.0f}"
        if self._bars is not None:
            assert task.bar is not None
            self._bars.update(task.bar, completed=task.done, total=total, figures=figures)
            return
        finished = total is not None and task.done >= total
        now = self._clock()
        if finished and task.finished:
            return
        if not finished and now - self._last_line < LINE_EVERY_S:
            return
        task.finished = finished
        self._last_line = now
        share = f"{100.0 * task.done / total:.0f}% " if total else ""
        line = f"{self.title} {task.name}: {share}({figures})"
        self._out.print(line, markup=False, highlight=False, soft_wrap=True)
