"""``provisioner train|promote|rollback|retrain``: the model lifecycle from the command line.

Each prints one JSON line on stdout (progress and messages go to stderr) and exits with
0 (done; promoted; challenger set; `retrain --when-degraded`: the champion is healthy, not
trained), 3 (promotion rejected), 4 (`promote --live`: no live evidence of the champion and
the challenger at a common step), 1 (error: bad data, no model, store unreachable) or 2
(bad usage). MLflow is imported inside the commands: it takes seconds.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Final

import typer

from models.model_types import ModelType
from provisioner import wiring
from provisioner.cli.common import console, parse_time, print_json, settings_of
from provisioner.cli.progress import TRAINING_STAGES, JobProgress

if TYPE_CHECKING:
    from models.horizon import HorizonChoice
    from provisioner.settings import Settings
    from training.cluster import DaskAddress
    from training.distributed import DaskTraining
    from training.retrain import TrainedVersion
    from training.sources import EventSource

EXIT_REJECTED: Final = 3
EXIT_NO_EVIDENCE: Final = 4
"""`promote --live` without live evidence of both versions at a common step."""
HORIZON_HELP: Final = (
    "Label horizon in seconds (default: PROVISIONER_HORIZON_S; unset, the service's lead "
    "time for the node boots logged in the range: a tick plus their 95th percentile)."
)

TraceOption = Annotated[
    Path | None,
    typer.Option(
        "--trace",
        exists=True,
        readable=True,
        help="Read events from this trace file (.jsonl or .parquet), or the directory of a "
        "partitioned export (`events export --partitions`), instead of the event log. With "
        "--dask, the workers read the export's partitions themselves (at the same path).",
    ),
]
SinceOption = Annotated[
    str | None, typer.Option(help="Events at or after this time (unix s or ISO 8601).")
]
UntilOption = Annotated[
    str | None, typer.Option(help="Events before this time (unix s or ISO 8601).")
]
ModelTypeOption = Annotated[
    ModelType | None,
    typer.Option(
        help="What to train (default: PROVISIONER_MODEL_TYPE): the one-window classifier, or "
        "a time-to-connect curve (a discrete-time hazard model), registered in the same "
        "model and gated on its probability at the horizon."
    ),
]

DaskOption = Annotated[
    str | None,
    typer.Option(
        "--dask",
        metavar="ADDRESS",
        help="Train on a Dask cluster (default: PROVISIONER_DASK): tcp://HOST:PORT, a "
        "scheduler whose workers have this package installed, or local:N, N worker "
        "processes started here for the job. The rows are built per user partition and the "
        "booster fitted on the workers; the same model. The classifier only.",
    ),
]


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("promote")(promote)
    app.command("rollback")(rollback)
    app.command("retrain")(retrain)


def train(
    ctx: typer.Context,
    trace: TraceOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    horizon: Annotated[
        float | None,
        typer.Option(min=1.0, help=HORIZON_HELP),
    ] = None,
    model_type: ModelTypeOption = None,
    dask: DaskOption = None,
) -> None:
    """Train on a range of events (default: the whole event log) and register a version.

    Prints the version, the data and the test-slice metrics of the model, the baseline
    and the heuristic (a curve's at the horizon, and its metrics at each horizon). Does
    not promote: see `provisioner promote`.
    """
    settings = settings_of(ctx)
    started = time.perf_counter()
    wiring.quiet_mlflow()
    from training.retrain import train_and_register

    kind = model_type or settings.model_type
    address = _dask_address(settings, dask, kind)
    with (
        _errors(),
        JobProgress("train", names=TRAINING_STAGES) as progress,
        _on_dask(settings, address) as on_dask,
    ):
        source = _read(
            settings, trace, parse_time(since), parse_time(until), None, progress, on_dask
        )
        chosen = _horizon(settings, horizon, source)
        trained = train_and_register(
            source,
            wiring.dataset_spec(settings, chosen.horizon_s),
            wiring.train_config(settings),
            wiring.tracking(settings),
            progress=progress,
            tags={"job": "train"},
            horizon=chosen,
            model_type=kind,
            dask=on_dask,
        )
    summary = trained.as_dict() | {"seconds": round(time.perf_counter() - started, 3)}
    print_json(summary)
    _show_table(trained)


def promote(
    ctx: typer.Context,
    version: Annotated[
        int | None, typer.Option(min=1, help="Version to promote (default: the newest).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Decide and print, but move no alias.")
    ] = False,
    trace: TraceOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    reason: Annotated[str | None, typer.Option(help="A note for the audit tags.")] = None,
    challenger: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Make this version the `challenger` (checking it loads), which the live "
            "service scores in the shadow of the champion; no promotion.",
        ),
    ] = None,
    live: Annotated[
        bool,
        typer.Option(
            "--live",
            help="Promote the `challenger` if it also beats the champion on live evidence "
            "(latest common step: enough settled predictions each; live log loss no worse, "
            "live Brier within PROVISIONER_LIVE_BRIER_TOLERANCE).",
        ),
    ] = False,
) -> None:
    """Promote a version to `champion` if it passes the gates against the current one.

    Both are scored on the same holdout: the test slice of the most recent events (the
    retrain window of the event log, or --trace / --since / --until), built as the
    candidate was trained. With --live the candidate is the `challenger`, and its live
    evidence is gated against the champion's too; promoted, it is no longer the
    challenger. Exit code 0: promoted (or would be, with --dry-run), or the challenger
    set (--challenger); 3: rejected; 4: --live without live evidence of both at a common
    step; 1: error.
    """
    settings = settings_of(ctx)
    wiring.quiet_mlflow()
    from training.promote import build_holdout, load_candidate, load_challenger, set_challenger
    from training.promote import promote as run_promotion

    if challenger is not None and (live or version is not None or dry_run):
        raise typer.BadParameter(
            "--challenger goes alone (not with --live, --version or --dry-run)",
            param_hint="--challenger",
        )
    if live and version is not None:
        raise typer.BadParameter(
            "--live promotes the challenger: no --version", param_hint="--live"
        )
    registry = wiring.model_registry(settings)
    if challenger is not None:
        with _errors():
            chosen = set_challenger(
                registry, str(challenger), actor=wiring.actor(settings), note=reason
            )
        print_json(chosen | {"model_name": registry.model_name})
        console.print(f"challenger: version {challenger}")
        return
    with _errors(), JobProgress("promote", names=TRAINING_STAGES) as progress:
        if live:
            candidate = load_challenger(registry)
        else:
            candidate = load_candidate(registry, None if version is None else str(version))
        source = _read(
            settings,
            trace,
            parse_time(since),
            parse_time(until),
            settings.retrain_window_hours,
            progress,
        )
        holdout = build_holdout(
            source.local_table(),
            candidate,
            rows_since=source.rows_since,
            progress=lambda d, t: progress("holdout", d, t),
        )
        progress("promote", 0, 1)
        decision = run_promotion(
            registry,
            candidate,
            holdout,
            tolerances=wiring.tolerances(settings),
            actor=wiring.actor(settings),
            dry_run=dry_run,
            note=reason,
            live=wiring.live_rule(settings) if live else None,
            now=wiring.clock(settings).now() if live else None,  # the service's clock
        )
        progress("promote", 1, 1)
    print_json(decision.as_dict() | {"model_name": registry.model_name})
    for line in decision.reasons:
        console.print(f"  {line}")
    if not decision.promote:
        raise typer.Exit(EXIT_REJECTED)


def rollback(
    ctx: typer.Context,
    reason: Annotated[str | None, typer.Option(help="A note for the audit tags.")] = None,
) -> None:
    """Move `champion` back to the `previous` version (checking it loads), audited."""
    settings = settings_of(ctx)
    wiring.quiet_mlflow()
    from training.promote import rollback as run_rollback

    registry = wiring.model_registry(settings)
    with _errors():
        result = run_rollback(registry, actor=wiring.actor(settings), note=reason)
    print_json(result.as_dict() | {"model_name": registry.model_name})
    console.print(f"champion: version {result.from_version} -> version {result.to_version}")


def retrain(
    ctx: typer.Context,
    trace: TraceOption = None,
    window_hours: Annotated[
        float | None,
        typer.Option(
            min=0.01,
            help="Hours of events up to the latest (default: PROVISIONER_RETRAIN_WINDOW_HOURS).",
        ),
    ] = None,
    horizon: Annotated[
        float | None,
        typer.Option(min=1.0, help=HORIZON_HELP),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Train and register, decide, but move no alias.")
    ] = False,
    when_degraded: Annotated[
        bool,
        typer.Option(
            "--when-degraded",
            help="Train only unless the champion is healthy on its latest live evidence "
            "(live_degraded 0, at least PROVISIONER_LIVE_MIN_SETTLED settled predictions, "
            "at most PROVISIONER_LIVE_MAX_AGE_S old); no champion, no evidence, stale or "
            "too few: it trains. Healthy: exit 0 without training.",
        ),
    ] = False,
    model_type: ModelTypeOption = None,
    dask: DaskOption = None,
) -> None:
    """Train on the recent window of the event log, register, and promote if the gates pass.

    For cron: one JSON line on stdout; exit code 0 when the new version was promoted (or,
    with --when-degraded, the champion is healthy and nothing was trained), 3 when it was
    registered but rejected (it becomes the `challenger` when there is a champion), 1 on
    error (bad data registers nothing).
    """
    settings = settings_of(ctx)
    started = time.perf_counter()
    wiring.quiet_mlflow()
    from training.retrain import champion_health
    from training.retrain import retrain as run_retrain

    window = window_hours if window_hours is not None else settings.retrain_window_hours
    kind = model_type or settings.model_type
    address = _dask_address(settings, dask, kind)
    health = None
    if when_degraded:
        with _errors():
            health = champion_health(
                wiring.model_registry(settings),
                wiring.clock(settings).now(),
                wiring.live_rule(settings),
            )
        if health.healthy:
            print_json({"action": "skipped", "health": health.as_dict()})
            console.print(f"{health.reason}: not retraining", highlight=False)
            return
        console.print(f"{health.reason}: retraining", highlight=False)
    with (
        _errors(),
        JobProgress("retrain", names=TRAINING_STAGES) as progress,
        _on_dask(settings, address) as on_dask,
    ):
        source = _read(settings, trace, None, None, window, progress, on_dask)
        chosen = _horizon(settings, horizon, source)
        outcome = run_retrain(
            source,
            wiring.dataset_spec(settings, chosen.horizon_s),
            wiring.train_config(settings),
            wiring.tracking(settings),
            wiring.model_registry(settings),
            tolerances=wiring.tolerances(settings),
            actor=wiring.actor(settings),
            dry_run=dry_run,
            progress=progress,
            horizon=chosen,
            model_type=kind,
            dask=on_dask,
        )
    summary = outcome.as_dict() | {
        "action": "trained",
        "health": None if health is None else health.as_dict(),
        "window_hours": window,
        "seconds": round(time.perf_counter() - started, 3),
    }
    print_json(summary)
    _show_table(outcome.trained)
    for line in outcome.decision.reasons:
        console.print(f"  {line}")
    if outcome.challenger is not None:
        console.print(f"version {outcome.challenger} is the challenger", highlight=False)
    if not outcome.decision.promote:
        raise typer.Exit(EXIT_REJECTED)


# -- helpers -----------------------------------------------------------------------------------


def _read(
    settings: Settings,
    trace: Path | None,
    since: float | None,
    until: float | None,
    window_hours: float | None,
    progress: JobProgress,
    on_dask: DaskTraining | None = None,
) -> EventSource:
    from features.partitioned import IncompleteExport, export_files
    from training.sources import NoEvents, from_log, from_trace

    if trace is not None and trace.is_dir() and on_dask is not None:
        from training.export_on_workers import from_export

        source = from_export(
            on_dask.client,
            trace,
            since=since,
            until=until,
            window_hours=window_hours,
            warmup_hours=settings.warm_history_hours,
            progress=lambda done, total: progress("read_partitions", done, total),
        )
        console.print(f"the Dask workers read {trace} themselves", highlight=False, soft_wrap=True)
    elif trace is not None:
        from features.transfer import UnsupportedFormat, trace_format

        try:
            if trace.is_dir():
                files = export_files(trace)
            else:
                trace_format(trace)
                files = [trace]
        except (UnsupportedFormat, IncompleteExport) as e:
            raise typer.BadParameter(str(e), param_hint="--trace") from e
        total = sum(file.stat().st_size for file in files)
        progress("read", 0, total)
        source = from_trace(
            trace,
            since=since,
            until=until,
            window_hours=window_hours,
            warmup_hours=settings.warm_history_hours,
            now=wiring.clock(settings).now(),
            limits=wiring.limits(settings),
            progress=lambda n: progress.advance("read", n),
        )
    else:
        with wiring.redis_client(settings) as client:
            log = wiring.event_log(settings, client)
            progress("read", 0, log.length())
            source = from_log(
                log,
                since=since,
                until=until,
                window_hours=window_hours,
                warmup_hours=settings.warm_history_hours,
                progress=lambda n: progress.advance("read", n),
            )
    if not len(source.table):
        raise NoEvents(
            f"no user events in {source.kind} {source.location} "
            f"between {since if source.since is None else source.since} "
            f"and {until if source.until is None else source.until}"
        )
    if source.rejected:
        console.print(f"[yellow]{source.rejected} line(s) or entries were not events: skipped[/]")
    return source


def _horizon(settings: Settings, given_s: float | None, source: EventSource) -> HorizonChoice:
    """The job's label horizon (``wiring.horizon``), said on stderr (in yellow when the
    default stands in for boots the range does not hold)."""
    from models.horizon import HorizonSource

    chosen = wiring.horizon(settings, given_s, source.boots)
    style = "yellow" if chosen.source is HorizonSource.DEFAULT else "default"
    console.print(chosen.describe(), style=style, highlight=False, soft_wrap=True)
    return chosen


def _dask_address(
    settings: Settings, given: str | None, model_type: ModelType
) -> DaskAddress | None:
    """The Dask address asked for (``--dask``, else the setting), checked: a bad one is bad
    usage, before anything is read."""
    from training.cluster import BadDaskAddress, DaskAddress

    text = given if given is not None else settings.dask
    if text is None:
        return None
    hint = "--dask" if given is not None else "PROVISIONER_DASK"
    if model_type is not ModelType.CLASSIFIER:
        raise typer.BadParameter(
            f"Dask trains the {ModelType.CLASSIFIER} only, not a {model_type}", param_hint=hint
        )
    try:
        return DaskAddress.parse(text)
    except BadDaskAddress as e:
        raise typer.BadParameter(str(e), param_hint=hint) from e


@contextmanager
def _on_dask(settings: Settings, address: DaskAddress | None) -> Iterator[DaskTraining | None]:
    """The job's training on the cluster at ``address``, connected (a local one started)
    for the job and closed after; None: on this process."""
    if address is None:
        yield None
        return
    from training.cluster import dask_client, worker_count
    from training.distributed import DaskTraining

    console.print(f"connecting to Dask at {address}", highlight=False)
    with dask_client(address, timeout_s=settings.dask_timeout_s) as client:
        workers = worker_count(client)
        console.print(f"Dask at {address}: {workers} worker(s)", highlight=False)
        yield DaskTraining(client, workers)


@contextmanager
def _errors() -> Iterator[None]:
    """Known failures: a message on stderr, a JSON line on stdout, exit code 1."""
    from mlflow.exceptions import MlflowException
    from redis.exceptions import ConnectionError as RedisConnectionError

    from features.partitioned import IncompleteExport
    from models.registry import RegistryError
    from service.redact import scrub
    from training.cluster import DaskError
    from training.promote import NoLiveEvidence, PromotionError
    from training.sources import NoEvents
    from training.train import BadTrainingData

    try:
        yield
    except NoLiveEvidence as e:
        console.print(f"[yellow]no live evidence:[/] {e}", soft_wrap=True)
        print_json({"error": str(e), "kind": type(e).__name__})
        raise typer.Exit(EXIT_NO_EVIDENCE) from e
    except (
        BadTrainingData,
        NoEvents,
        PromotionError,
        RegistryError,
        MlflowException,
        RedisConnectionError,
        DaskError,
        IncompleteExport,
    ) as e:
        kind = type(e).__name__
        message = scrub(str(e))  # errors quote the store's URI, credentials included
        console.print(f"[red]error:[/] {message}", soft_wrap=True)
        print_json({"error": message, "kind": kind})
        raise typer.Exit(1) from e


def _show_table(trained: TrainedVersion) -> None:
    from training.evaluate import table
    from training.train_curve import CurveTrainResult

    result = trained.result
    console.print(
        f"version {trained.logged.version} of {trained.logged.model_name!r} "
        f"(run {trained.logged.run_id}), a {result.model_type}, {trained.horizon.describe()}; "
        "test slice:",
        highlight=False,
        soft_wrap=True,
    )
    console.print(table(result.metrics), markup=False, highlight=False)
    if isinstance(result, CurveTrainResult):
        curve = result.curve.metrics
        console.print(
            f"curve over {len(curve['horizons_s'])} horizons: integrated Brier "
            f"{curve['integrated_brier']:.4g}, mean log loss {curve['mean_log_loss']:.4g}",
            highlight=False,
        )
