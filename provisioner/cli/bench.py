"""``provisioner bench``: replay a workload or a trace through every policy, and compare."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from models.model_types import DEFAULT_MODEL_TYPE, ModelType
from provisioner.cli.common import console, literal_help, print_json
from provisioner.cli.progress import JobProgress, counted, virtual_seconds
from simulation.nodes.boot import DEFAULT_BOOT_SPEC, SCHEDULE_FORM, SPEC_FORMS

if TYPE_CHECKING:
    from collections.abc import Sequence

    from simulation.bench.policy_run import PolicyResult
    from simulation.bench.request import BenchRequest


TABLE_WIDTH = 150
BOOT_HELP = literal_help(
    f"Boot times, seconds: SPEC = {SPEC_FORMS}; or a schedule {SCHEDULE_FORM}, e.g. "
    "uniform:10:29,uniform:60:180@12: the first SPEC from the start, each other from HOURS "
    "after the start of the scored window (after the --history hours)."
)


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)


def bench(
    *,
    workload: Annotated[
        str | None, typer.Option(help="Workload: seed (the default), habits, shifts or churn.")
    ] = None,
    hours: Annotated[
        float | None,
        typer.Option(help="Virtual hours scored (default: a day; with --trace: all of it)."),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(help="Seed of the workload and of the simulated boot times."),
    ] = None,
    users: Annotated[
        int | None, typer.Option(min=1, help="Population size (default: the workload's).")
    ] = None,
    trace: Annotated[
        Path | None,
        typer.Option(help="Replay a recorded trace (.jsonl or .parquet) instead of a workload."),
    ] = None,
    train_trace: Annotated[
        Path | None, typer.Option(help="Train the model on this trace (must precede --trace).")
    ] = None,
    train_fraction: Annotated[
        float | None,
        typer.Option(help="Train the model on this earlier part of --trace; score the rest."),
    ] = None,
    train_hours: Annotated[
        float | None,
        typer.Option(
            help="Hours of the model's training workload, another seed (default: --hours)."
        ),
    ] = None,
    history: Annotated[
        float | None,
        typer.Option(
            help="Hours of the same users' events before the scored window (a generated "
            "workload): the model trains on them, every engine's features see them first."
        ),
    ] = None,
    boot: Annotated[str, typer.Option(help=BOOT_HELP)] = DEFAULT_BOOT_SPEC,
    model_type: Annotated[
        ModelType,
        typer.Option(
            help="What the model policy trains and serves: the one-window classifier, or a "
            "time-to-connect curve (a discrete-time hazard model)."
        ),
    ] = DEFAULT_MODEL_TYPE,
    policies: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated: static:K, seed-rule, heuristic[:TARGET], model[:TARGET], "
            "oracle (default: all of them)."
        ),
    ] = None,
    target: Annotated[
        float | None,
        typer.Option(help="Service-level target of heuristic and model (default: the config's)."),
    ] = None,
    max_nodes: Annotated[
        int | None,
        typer.Option(min=1, help="Node budget of every policy (default: one that never binds)."),
    ] = None,
    settings: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Another service config field, KEY=VALUE (e.g. max_idle_s=60); repeatable.",
        ),
    ] = None,
    sweep: Annotated[
        bool,
        typer.Option("--sweep", help="Vary each policy's knob (K, the target): the frontier."),
    ] = False,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the JSON result to this file.")
    ] = None,
    plot: Annotated[
        Path | None, typer.Option(help="Draw instant rate against efficiency into this PNG.")
    ] = None,
) -> None:
    """Compare provisioning policies on the same events, on a virtual clock.

    Runs the service's decision core (and the baselines) against a simulated node API, and
    scores every policy the same way: instant rate, waits, efficiency. A table goes to
    stderr; one JSON summary line to stdout (the --json file holds the same, without the
    wall times).
    """
    from simulation.bench.errors import BenchError
    from simulation.bench.model import TRAIN_LABEL
    from simulation.bench.plot import plot_frontier
    from simulation.bench.request import BenchRequest, parse_override
    from simulation.bench.run import run_bench
    from simulation.nodes.boot import parse_boot_schedule
    from simulation.policies import BadPolicySpec, parse_policies
    from simulation.workloads import WORKLOADS

    if trace is None and workload is not None and workload not in WORKLOADS:
        raise typer.BadParameter(
            f"{workload!r} is not a workload; choose one of: {', '.join(WORKLOADS)}",
            param_hint="--workload",
        )
    for name, value in (("--hours", hours), ("--train-hours", train_hours), ("--history", history)):
        if value is not None and not (value > 0 and math.isfinite(value)):
            raise typer.BadParameter(f"must be a number of hours > 0, not {value}", param_hint=name)
    if target is not None and not 0.0 < target < 1.0:
        raise typer.BadParameter(f"must be in (0, 1), not {target}", param_hint="--target")
    for name, path in (("--json", json_out), ("--plot", plot)):
        if path is not None and not path.parent.is_dir():
            raise typer.BadParameter(f"folder {path.parent} does not exist", param_hint=name)
    try:
        parse_boot_schedule(boot)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--boot") from e
    try:
        specs = None if policies is None else parse_policies(policies)
    except BadPolicySpec as e:
        raise typer.BadParameter(str(e), param_hint="--policies") from e
    try:
        overrides = tuple(parse_override(text) for text in settings or ())
    except BenchError as e:
        raise typer.BadParameter(str(e), param_hint="--set") from e
    options: dict[str, Any] = {
        "workload": workload,
        "trace": trace,
        "hours": hours,
        "seed": seed,
        "users": users,
        "boot": boot,
        "policies": specs,
        "train_trace": train_trace,
        "train_fraction": train_fraction,
        "train_hours": train_hours,
        "history_hours": history,
        "target": target,
        "model_type": model_type,
        "max_nodes": max_nodes,
        "overrides": overrides,
    }
    try:  # options not given take the request's defaults
        request = BenchRequest(**{k: v for k, v in options.items() if v is not None})
    except BenchError as e:
        raise typer.BadParameter(str(e)) from e
    started = time.perf_counter()
    try:
        with JobProgress("bench", virtual_seconds, figures_of={TRAIN_LABEL: counted}) as progress:
            result = run_bench(request, sweep=sweep, progress=progress)
    except BenchError as e:  # the message as written: no markup, no emoji codes
        console.print(f"[red]error:[/] {escape(str(e))}", emoji=False)
        raise typer.Exit(2) from e
    data = result.to_dict()
    _show(result.policies, title=f"bench, boot {data['boot']}")
    if result.sweep:
        _show(result.sweep, title=f"sweep, boot {data['boot']}")
    if json_out is not None:
        json_out.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    if plot is not None:
        plot_frontier(result.sweep or result.policies, plot, title=_title(request, data))
        console.print(f"plot: {plot}")
    wall = {p.policy: round(p.wall_s, 3) for p in (*result.policies, *result.sweep)}
    if result.setup.model is not None:
        wall[TRAIN_LABEL] = round(result.setup.model.seconds, 3)
    print_json(data | {"seconds": round(time.perf_counter() - started, 3), "wall_s": wall})


def _show(results: Sequence[PolicyResult], *, title: str) -> None:
    from rich.console import Console

    from simulation.bench.table import render_table

    table = render_table(results, title=title)
    if console.is_terminal:
        console.print(table)
    else:  # a log or a pipe: wide enough for every column (rich assumes 80 otherwise)
        Console(stderr=True, width=TABLE_WIDTH).print(table)


def _title(request: BenchRequest, data: dict[str, Any]) -> str:
    what = f"trace {request.trace.name}" if request.trace is not None else request.workload
    return f"{what}, {data['hours']:g} h, seed {request.seed}, boot {data['boot']}"
