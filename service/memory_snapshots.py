"""Snapshots of what Python holds, on demand, for looking into a running service's memory.

Under tracemalloc (``PYTHONTRACEMALLOC=N`` in the environment, or started here), every
``SIGUSR1`` writes a snapshot of every traced allocation, numpy's buffers included, with N
frames of where it was made, to a file of its own in a folder: ``<serial>-<unix ms>.tracemalloc``,
the serial counting from 1. Two snapshots an interval apart, compared
(``tracemalloc.Snapshot.load(a).compare_to(...)``), say which lines of code hold more memory
at the second: what a slow growth of a long-running process is made of. Writing one takes
about a second per 100 MB traced, off the event loop; tracing slows every allocation, so this
is for looking into memory, not for production.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import signal
import time
import tracemalloc
from pathlib import Path
from typing import Final

log = logging.getLogger(__name__)

SNAPSHOT_SIGNAL: Final = signal.SIGUSR1
SUFFIX: Final = ".tracemalloc"
DEFAULT_FRAMES: Final = 10
"""Frames a trace keeps when tracemalloc was not already tracing."""


def serial_of(path: Path) -> int:
    """A snapshot's place in its folder, 1 for the first."""
    return int(path.name.split("-", 1)[0])


def taken_at(path: Path) -> float:
    """When a snapshot was taken, unix seconds (to the millisecond)."""
    return int(path.name.removesuffix(SUFFIX).split("-", 1)[1]) / 1000


def snapshot_files(folder: Path) -> list[Path]:
    """The snapshots in ``folder``, in the order they were taken."""
    return sorted(folder.glob(f"*{SUFFIX}"), key=serial_of)


def take_snapshot(folder: Path, serial: int) -> Path:
    """Write a snapshot of what tracemalloc traces now into ``folder``; its path. Written to a
    temporary name first, so a reader never sees half a snapshot."""
    path = folder / f"{serial}-{time.time_ns() // 1_000_000}{SUFFIX}"
    partial = path.with_suffix(".partial")
    tracemalloc.take_snapshot().dump(str(partial))
    partial.rename(path)
    return path


def on_signal(loop: asyncio.AbstractEventLoop, folder: Path) -> None:
    """Take a snapshot into ``folder`` at every ``SIGUSR1`` from now on, tracing first if
    tracemalloc is not (with :data:`DEFAULT_FRAMES` frames: what was allocated before is not
    traced). The folder must exist and be writable (``serve --memory-snapshots`` checks)."""
    if not tracemalloc.is_tracing():
        tracemalloc.start(DEFAULT_FRAMES)
        log.warning(
            "tracemalloc started now (%d frames): set PYTHONTRACEMALLOC=N to trace from the start",
            DEFAULT_FRAMES,
        )
    serials = itertools.count(1)
    taking: set[asyncio.Task[Path]] = set()

    async def take(serial: int) -> Path:
        path = await asyncio.to_thread(take_snapshot, folder, serial)
        log.info("memory snapshot %s", path)
        return path

    def handle() -> None:
        task = loop.create_task(take(next(serials)), name="memory-snapshot")
        taking.add(task)  # held until done: the loop keeps only a weak reference
        task.add_done_callback(taking.discard)

    loop.add_signal_handler(SNAPSHOT_SIGNAL, handle)
