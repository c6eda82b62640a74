"""Progress of a long command when stderr is not a terminal: plain lines, now and then."""

from __future__ import annotations

import io

from rich.console import Console

from provisioner.cli.progress import LINE_EVERY_S, JobProgress, virtual_seconds


def test_plain_lines_at_most_every_few_seconds_and_one_per_finished_task() -> None:
    out = io.StringIO()
    now = [0.0]
    progress = JobProgress(
        "bench", virtual_seconds, out=Console(file=out, width=40), clock=lambda: now[0]
    )
    assert not out.getvalue()  # a StringIO is no terminal: no bar
    day = 24 * 3600.0
    with progress:
        progress("heuristic", 0.0, day)
        now[0] = LINE_EVERY_S / 2
        progress("heuristic", 0.1 * day, day)  # too soon after the last line
        now[0] = LINE_EVERY_S + 1
        progress("heuristic", 0.35 * day, day)
        progress("heuristic", day, day)  # a task's end is always shown, once
        progress("heuristic", day, day)
        progress("oracle", day, day)
    assert out.getvalue().splitlines() == [
        "bench heuristic: 0% (0.0 h of 24 h simulated)",
        "bench heuristic: 35% (8.4 h of 24 h simulated)",
        "bench heuristic: 100% (24.0 h of 24 h simulated)",
        "bench oracle: 100% (24.0 h of 24 h simulated)",
    ]


def test_advance_adds_up_and_names_are_shown() -> None:
    out = io.StringIO()
    progress = JobProgress("train", names={"read": "read events"}, out=Console(file=out))
    with progress:
        progress("read", 0, 3000)
        progress.advance("read", 1000)
        progress.advance("read", 2000)
    assert out.getvalue().splitlines() == [
        "train read events: 0% (0 of 3,000)",
        "train read events: 100% (3,000 of 3,000)",
    ]
