"""``provisioner simulate``: workloads as trace files or live on pub/sub."""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer

from provisioner.cli.common import console, parse_time, print_json, settings_of
from provisioner.cli.progress import JobProgress, virtual_hours

if TYPE_CHECKING:
    import redis

    from features.clock import ScaledClock
    from features.events import UserEvent
    from provisioner.settings import Settings

PROGRESS_EVERY = 2000
"""Events between two progress-bar updates when writing a trace."""


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)


def simulate(
    ctx: typer.Context,
    *,
    workload: Annotated[
        str, typer.Option(help="Workload: seed, habits, shifts or churn.")
    ] = "seed",
    hours: Annotated[
        float | None,
        typer.Option(
            help="Virtual hours to simulate (required with --out; --realtime: until stopped)."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same events.")] = 1,
    users: Annotated[
        int | None, typer.Option(min=1, help="Population size (default: the workload's).")
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(
            help="Start of the workload, unix s or ISO 8601 [default: 2024-11-25 UTC; "
            "--realtime: now]. With --realtime, a start in the past continues a history: "
            "events before now are skipped."
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write a trace file, .jsonl or .parquet.")
    ] = None,
    realtime: Annotated[
        bool, typer.Option("--realtime", help="Publish on Redis pub/sub as time goes by.")
    ] = False,
    speed: Annotated[
        float | None,
        typer.Option(help="--realtime: clock speed-up from now (default: the settings' clock)."),
    ] = None,
) -> None:
    """Generate a workload: write it as a trace file, or publish it live on pub/sub.

    Prints one JSON summary line on stdout: events per channel, users, connects, the
    time range and the seconds taken.
    """
    from simulation.workloads import WORKLOADS

    if workload not in WORKLOADS:
        raise typer.BadParameter(
            f"{workload!r} is not a workload; choose one of: {', '.join(WORKLOADS)}",
            param_hint="--workload",
        )
    if hours is not None and not (hours > 0 and math.isfinite(hours)):
        raise typer.BadParameter(
            f"must be a number of hours > 0, not {hours}", param_hint="--hours"
        )
    if out is not None and realtime:
        raise typer.BadParameter(
            "--out and --realtime are exclusive: choose one", param_hint="--out"
        )
    if out is None and not realtime:
        raise typer.BadParameter(
            "give one: --out FILE writes a trace, --realtime publishes on pub/sub",
            param_hint="--out / --realtime",
        )
    try:
        begin = parse_time(start)
    except typer.BadParameter as e:
        raise typer.BadParameter(str(e), param_hint="--start") from e
    if realtime:
        if speed is not None and not (speed > 0 and math.isfinite(speed)):
            raise typer.BadParameter(f"must be > 0, not {speed}", param_hint="--speed")
        _publish(
            settings=settings_of(ctx),
            workload=workload,
            hours=hours,
            seed=seed,
            users=users,
            speed=speed,
            start=begin,
        )
        return
    assert out is not None
    if speed is not None:
        raise typer.BadParameter("only applies with --realtime", param_hint="--speed")
    if hours is None:
        raise typer.BadParameter(
            "how many virtual hours to write is required with --out", param_hint="--hours"
        )
    _write(out=out, workload=workload, hours=hours, seed=seed, users=users, start=begin)


def _write(
    *, out: Path, workload: str, hours: float, seed: int, users: int | None, start: float | None
) -> None:
    from features.trace import write_jsonl, write_parquet
    from features.transfer import UnsupportedFormat, trace_format
    from simulation.workloads import DEFAULT_START, generate, population
    from simulation.workloads.tally import Tally

    try:
        kind = trace_format(out)
    except UnsupportedFormat as e:
        raise typer.BadParameter(str(e), param_hint="--out") from e
    if not out.parent.is_dir():
        raise typer.BadParameter(f"folder {out.parent} does not exist", param_hint="--out")
    begin = DEFAULT_START if start is None else start
    try:
        events = generate(workload, hours=hours, seed=seed, start=begin, users=users)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from e
    started = time.perf_counter()
    tally = Tally()
    label = f"{workload} -> {out.name}"
    with JobProgress("simulate", virtual_hours) as progress:
        progress(label, 0, hours)

        def advancing(events: Iterator[UserEvent]) -> Iterator[UserEvent]:
            for n, event in enumerate(tally.count(events), start=1):
                if n % PROGRESS_EVERY == 0:
                    progress(label, (event.ts - begin) / 3600, hours)
                yield event
            progress(label, hours, hours)

        writer = write_parquet if kind == "parquet" else write_jsonl
        partial = out.with_name(out.name + ".part")  # never a half-written trace under `out`
        try:
            writer(partial, advancing(events))
            partial.replace(out)
        finally:
            partial.unlink(missing_ok=True)
    summary = _summary(workload, seed, len(population(workload, seed=seed, users=users)), hours)
    print_json(
        summary
        | tally.as_dict()
        | {"start": begin, "out": str(out), "seconds": round(time.perf_counter() - started, 3)}
    )


def _publish(
    *,
    settings: Settings,
    workload: str,
    hours: float | None,
    seed: int,
    users: int | None,
    speed: float | None,
    start: float | None,
) -> None:
    from provisioner import wiring
    from simulation.workloads import population
    from simulation.workloads.realtime import PublishReport, run_realtime

    clock = _clock(settings, speed)
    stop = threading.Event()
    started = time.perf_counter()
    with wiring.redis_client(settings) as client, _stop_on_signals(stop):
        _check_reachable(client)
        prefix = settings.channel_prefix
        console.print(
            f"simulate: {workload} on pub/sub ({prefix or 'no prefix'}), "
            f"clock x{clock.speed:g} (Ctrl-C to stop)"
        )
        with console.status("starting") as status:

            def show(report: PublishReport, now: float) -> None:
                tally = report.tally
                moment = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d %H:%M:%S")
                status.update(
                    f"{moment} UTC: {tally.events} published, {tally.connects} connects, "
                    f"{len(tally.users)} users, {report.failed} failed"
                )

            report = run_realtime(
                client,
                clock,
                workload,
                seed=seed,
                stop=stop,
                hours=math.inf if hours is None else hours,
                users=users,
                channel_prefix=prefix,
                on_progress=show,
                start=start,
            )
    summary = _summary(workload, seed, len(population(workload, seed=seed, users=users)), hours)
    print_json(
        summary
        | report.as_dict()
        | {
            "realtime": True,
            "speed": clock.speed,
            "channel_prefix": prefix,
            "seconds": round(time.perf_counter() - started, 3),
        }
    )


def _check_reachable(client: redis.Redis) -> None:
    """Fail fast and clearly (no retries with backoff) when Redis does not answer."""
    import redis as redis_
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    policy = client.get_retry()
    client.set_retry(Retry(NoBackoff(), 0))
    try:
        client.ping()
    except redis_.RedisError as e:
        console.print(f"[red]error:[/] cannot reach Redis: {e}")
        raise typer.Exit(1) from e
    finally:
        if policy is not None:
            client.set_retry(policy)


def _summary(workload: str, seed: int, users: int, hours: float | None) -> dict[str, Any]:
    return {"workload": workload, "seed": seed, "users": users, "hours": hours}


def _clock(settings: Settings, speed: float | None) -> ScaledClock:
    from features.clock import ScaledClock
    from provisioner import wiring

    if speed is None:
        return wiring.clock(settings)
    return ScaledClock(anchor=time.time(), speed=speed)


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Set ``stop`` on SIGINT and SIGTERM for the duration; the old handlers come back after."""

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
