"""``provisioner events import|export|stats|dead`` and ``provisioner bridge``."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from provisioner import wiring
from provisioner.cli.common import (
    console,
    parse_time,
    print_json,
    settings_of,
)
from provisioner.cli.progress import JobProgress, in_bytes

events_app = typer.Typer(help="The event log: import, export and inspect.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(events_app, name="events")
    app.command("bridge")(bridge)


@events_app.command("import")
def import_(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    strict: Annotated[
        bool, typer.Option(help="Exit with code 1 when any line was rejected.")
    ] = False,
) -> None:
    """Append the events of a trace file (.jsonl or .parquet) to the event log.

    Lines that are not valid events go to the dead-letter stream with their reason;
    the import goes on and the summary counts them.
    """
    from features.transfer import UnsupportedFormat, import_trace, trace_format

    settings = settings_of(ctx)
    try:
        trace_format(file)
    except UnsupportedFormat as e:
        raise typer.BadParameter(str(e), param_hint="FILE") from e
    clock = wiring.clock(settings)
    started = time.perf_counter()
    label = f"import {file.name}"
    with wiring.redis_client(settings) as client, JobProgress("events", in_bytes) as progress:
        log = wiring.event_log(settings, client)
        progress(label, 0, file.stat().st_size)
        report = import_trace(
            log, file, now=clock.now(), progress=lambda n: progress.advance(label, n)
        )
    elapsed = time.perf_counter() - started
    summary = report.as_dict() | {"file": str(file), "seconds": round(elapsed, 3)}
    print_json(summary)
    if report.rejected_total:
        console.print(
            f"[yellow]{report.rejected_total} line(s) rejected[/]; "
            "see `provisioner events dead` for reasons."
        )
        if strict:
            raise typer.Exit(1)


@events_app.command("export")
def export(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", help="Output file, .jsonl or .parquet.")],
    since: Annotated[
        str | None, typer.Option(help="Events at or after this time (unix s or ISO 8601).")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Events before this time (unix s or ISO 8601).")
    ] = None,
) -> None:
    """Write the events of the log (optionally a time range) to a trace file."""
    from features.transfer import UnsupportedFormat, export_trace, trace_format

    settings = settings_of(ctx)
    try:
        trace_format(out)
    except UnsupportedFormat as e:
        raise typer.BadParameter(str(e), param_hint="--out") from e
    start, end = parse_time(since), parse_time(until)
    started = time.perf_counter()
    label = f"export {out.name}"
    with wiring.redis_client(settings) as client, JobProgress("events") as progress:
        log = wiring.event_log(settings, client)
        progress(label, 0, log.length())
        count = export_trace(log, out, start, end, progress=lambda n: progress.advance(label, n))
    print_json(
        {
            "exported": count,
            "file": str(out),
            "since": start,
            "until": end,
            "seconds": round(time.perf_counter() - started, 3),
        }
    )


@events_app.command("stats")
def stats(ctx: typer.Context) -> None:
    """Length of the log, events appended and dead letters by reason."""
    settings = settings_of(ctx)
    with wiring.redis_client(settings) as client:
        log = wiring.event_log(settings, client)
        print_json({"stream": log.keys.stream, "length": log.length(), "counters": log.stats()})


@events_app.command("dead")
def dead(
    ctx: typer.Context,
    count: Annotated[int, typer.Option(min=1, help="How many, newest first.")] = 20,
) -> None:
    """The most recent dead letters: reason, source and the refused message."""
    from rich.table import Table

    settings = settings_of(ctx)
    with wiring.redis_client(settings) as client:
        letters = wiring.event_log(settings, client).dead_letters(count)
    table = Table("reason", "source", "detail", "raw")
    for letter in letters:
        table.add_row(letter.reason.value, letter.source, letter.detail, letter.raw[:80])
    console.print(table)


def bridge(ctx: typer.Context) -> None:
    """Subscribe to the seed's pub/sub channels and append every message to the log."""
    from features.bridge import Bridge, BridgeStats

    settings = settings_of(ctx)
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    with wiring.redis_client(settings) as client, console.status("bridging") as status:

        def show(s: BridgeStats) -> None:
            status.update(
                f"bridging: {s.received} received, {s.appended} logged, {s.dead_total} dead"
            )

        worker = Bridge(
            client,
            wiring.event_log(settings, client),
            channel_prefix=settings.channel_prefix,
            clock=wiring.clock(settings),
            on_batch=show,
        )
        console.print(f"bridge: pub/sub -> {worker.event_log.keys.stream} (Ctrl-C to stop)")
        result = worker.run(stop)
    print_json(
        {
            "received": result.received,
            "appended": result.appended,
            "dead": dict(result.dead),
            "reconnects": result.reconnects,
        }
    )
