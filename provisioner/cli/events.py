"""``provisioner events import|export|stats|dead`` and ``provisioner bridge``."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer

from features.eventlog import EventLog
from features.transfer import TraceFormat
from provisioner import wiring
from provisioner.cli.common import (
    console,
    parse_time,
    print_json,
    settings_of,
)
from provisioner.cli.progress import JobProgress, counted, in_bytes

events_app = typer.Typer(help="The event log: import, export and inspect.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(events_app, name="events")
    app.command("bridge")(bridge)


@events_app.command("import")
def import_(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(exists=True, readable=True)],
    strict: Annotated[
        bool, typer.Option(help="Exit with code 1 when any line was rejected.")
    ] = False,
) -> None:
    """Append the events of a trace file (.jsonl or .parquet), or of the directory of a
    partitioned export (merged back in time order), to the event log.

    Lines that are not valid events go to the dead-letter stream with their reason;
    the import goes on and the summary counts them.
    """
    from features.partitioned import IncompleteExport, read_manifest
    from features.trace import parquet_rows
    from features.transfer import UnsupportedFormat, import_trace, trace_format

    settings = settings_of(ctx)
    try:  # the amounts import_trace reports: events from Parquet, bytes of JSON lines
        if file.is_dir():
            total, figures = read_manifest(file).rows, counted
        elif trace_format(file) is TraceFormat.PARQUET:
            total, figures = parquet_rows(file), counted
        else:
            total, figures = file.stat().st_size, in_bytes
    except (UnsupportedFormat, IncompleteExport) as e:
        raise typer.BadParameter(str(e), param_hint="FILE") from e
    clock = wiring.clock(settings)
    started = time.perf_counter()
    label = f"import {file.name}"
    with wiring.redis_client(settings) as client, JobProgress("events", figures) as progress:
        log = wiring.event_log(settings, client)
        progress(label, 0, total)
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
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="Output file, .jsonl or .parquet; with --partitions, a new or empty directory.",
        ),
    ],
    since: Annotated[
        str | None, typer.Option(help="Events at or after this time (unix s or ISO 8601).")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Events before this time (unix s or ISO 8601).")
    ] = None,
    format_: Annotated[
        TraceFormat | None,
        typer.Option(
            "--format",
            help="Default: the file's extension; parquet with --partitions (the only one).",
        ),
    ] = None,
    partitions: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Write a directory of N user partitions (user_partition=K/part-*.parquet, "
            "node events in nodes/, _manifest.json last) instead of one file.",
        ),
    ] = None,
) -> None:
    """Write the events of the log (optionally a time range) to a trace file, or to a
    directory partitioned by user."""
    from features.transfer import UnsupportedFormat, trace_format

    start, end = parse_time(since), parse_time(until)
    if partitions is not None:
        _export_partitioned(ctx, out, format_, partitions, start, end)
        return
    try:
        kind = trace_format(out)
    except UnsupportedFormat as e:
        raise typer.BadParameter(str(e), param_hint="--out") from e
    if format_ is not None and format_ is not kind:
        raise typer.BadParameter(
            f"{out.name} is a .{kind} name; --format {format_} needs a .{format_} file",
            param_hint="--format",
        )
    _export_file(ctx, out, start, end)


Exporting = Callable[[EventLog, Callable[[int], None]], dict[str, Any]]
"""Writes the log's events (telling the progress how many) and says what it wrote."""


def _export(
    ctx: typer.Context, label: str, start: float | None, end: float | None, write: Exporting
) -> None:
    """Run ``write`` on the log with a progress bar over its entries; print its summary with
    the range and the time taken."""
    settings = settings_of(ctx)
    started = time.perf_counter()
    with wiring.redis_client(settings) as client, JobProgress("events") as progress:
        log = wiring.event_log(settings, client)
        progress(label, 0, log.length())
        summary = write(log, lambda n: progress.advance(label, n))
    seconds = round(time.perf_counter() - started, 3)
    print_json(summary | {"since": start, "until": end, "seconds": seconds})


def _export_file(ctx: typer.Context, out: Path, start: float | None, end: float | None) -> None:
    from features.transfer import export_trace

    def write(log: EventLog, advance: Callable[[int], None]) -> dict[str, Any]:
        return {"exported": export_trace(log, out, start, end, progress=advance), "file": str(out)}

    _export(ctx, f"export {out.name}", start, end, write)


def _export_partitioned(
    ctx: typer.Context,
    out: Path,
    format_: TraceFormat | None,
    partitions: int,
    start: float | None,
    end: float | None,
) -> None:
    from features.partitioned import ExportExists, check_partitions, check_target
    from features.transfer import UnsupportedFormat, export_partitioned, trace_format

    if format_ is TraceFormat.JSONL:
        raise typer.BadParameter(
            "a partitioned export is Parquet only: --format parquet, or leave --format out",
            param_hint="--format",
        )
    try:
        named = trace_format(out)
    except UnsupportedFormat:
        named = None
    if named is TraceFormat.JSONL:
        raise typer.BadParameter(
            f"{out.name} names a .jsonl file; --partitions writes a directory of Parquet files",
            param_hint="--out",
        )
    try:
        check_partitions(partitions)
        check_target(out)
    except ExportExists as e:
        raise typer.BadParameter(str(e), param_hint="--out") from e
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--partitions") from e

    def write(log: EventLog, advance: Callable[[int], None]) -> dict[str, Any]:
        manifest = export_partitioned(
            log, out, partitions, start, end, exported_at=time.time(), progress=advance
        )
        return {
            "exported": manifest.rows,
            "directory": str(out),
            "partitions": partitions,
            "rows_per_partition": list(manifest.user_rows),
            "node_rows": manifest.node_rows,
        }

    _export(ctx, f"export {out.name} ({partitions} partitions)", start, end, write)


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
