"""``provisioner demo``: the whole system on this machine in one command."""

from __future__ import annotations

import secrets
import signal
import time
from types import FrameType
from typing import Annotated, Any

import typer

from provisioner import wiring
from provisioner.cli.common import console, print_json, settings_of
from provisioner.cli.progress import TRAINING_STAGES, JobProgress, virtual_hours


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    ctx: typer.Context,
    duration: Annotated[
        float | None,
        typer.Option(min=1, help="Run unattended this many seconds, then print a summary."),
    ] = None,
    speed: Annotated[
        float, typer.Option(min=0.1, max=100, help="Clock speed: 10 runs ten times faster.")
    ] = 1.0,
    history_hours: Annotated[
        float, typer.Option(min=2, max=24 * 14, help="Hours of history to train on.")
    ] = 24.0,
    seed: Annotated[int, typer.Option(help="Seed of the workload.")] = 1,
    port: Annotated[int, typer.Option(min=1, max=65535, help="Service port.")] = 8000,
    node_api_port: Annotated[
        int, typer.Option(min=1, max=65535, help="Node API simulator port.")
    ] = 7777,
) -> None:
    """Run everything on this machine: history, training, node API, service, live users.

    Starts Redis (embedded) and the local MLflow store, trains and promotes a model on a
    generated history, then runs the node API simulator, the service and the seed workload
    live. Ctrl-C stops everything it started; with --duration it stops by itself and prints
    a JSON summary (connects, instant rate, efficiency, model version, fallbacks).
    """
    import redis

    from features.eventlog import EventLog, LogKeys, batched
    from provisioner import demo_processes
    from simulation.workloads import generate
    from training.retrain import retrain
    from training.sources import from_log

    base = settings_of(ctx)
    wiring.quiet_mlflow()
    settings = base.model_copy(
        update={
            "key_prefix": demo_processes.PREFIX,
            "channel_prefix": demo_processes.PREFIX,
            "model_name": demo_processes.MODEL_NAME,
            "experiment_name": demo_processes.EXPERIMENT,
        }
    )
    settings.home.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    interrupted = _interruptible()
    with wiring.redis_url(settings) as url:
        client = redis.Redis.from_url(url)
        try:
            demo_processes.clear_namespace(client)
            demo_processes.clear_registered_model(settings)
            log = EventLog(client, LogKeys(demo_processes.PREFIX), limits=wiring.limits(settings))
            end = time.time()
            start = end - history_hours * 3600
            with JobProgress("demo", virtual_hours) as progress:
                label = "history of the seed workload"
                progress(label, 0, history_hours)
                events = generate("seed", hours=history_hours, seed=seed, start=start)
                count = 0
                for batch in batched(events, 5000):
                    log.append_batch(batch)
                    count += len(batch)
                    progress(label, round((batch[-1].ts - start) / 3600, 1), history_hours)
                progress(label, history_hours, history_hours)
            console.print(f"history: {count} events in the event log ({log.keys.stream})")
            _stop_if_asked(interrupted)
            with JobProgress("demo", names=TRAINING_STAGES) as report:
                source = from_log(log, progress=lambda n: None)
                chosen = wiring.horizon(settings, None, source.boots)
                outcome = retrain(
                    source,
                    wiring.dataset_spec(settings, chosen.horizon_s),
                    wiring.train_config(settings),
                    wiring.tracking(settings),
                    wiring.model_registry(settings),
                    tolerances=wiring.tolerances(settings),
                    actor="demo",
                    progress=report,
                    horizon=chosen,
                )
            version = outcome.trained.logged.version
            if not outcome.decision.promote:
                raise demo_processes.DemoError(
                    f"version {version} was not promoted: {'; '.join(outcome.decision.reasons)}"
                )
            model_metrics = outcome.trained.result.metrics["model"].scores()
            console.print(
                f"model: version {version} promoted to champion "
                f"(test log loss {model_metrics['log_loss']:.4f}, "
                f"ROC AUC {model_metrics['roc_auc']:.3f}) in "
                f"{time.perf_counter() - started:.0f} s"
            )
            _stop_if_asked(interrupted)
            _train_challenger(settings, log, history_hours, chosen)
            _stop_if_asked(interrupted)
            summary = _run_live(
                settings,
                url,
                speed,
                history_hours,
                seed,
                port,
                node_api_port,
                duration,
                interrupted,
            )
        except demo_processes.DemoError as e:
            console.print(f"[red]demo failed:[/] {e}")
            print_json({"error": str(e)})
            raise typer.Exit(1) from e
        finally:
            client.close()
    print_json(summary | {"seconds": round(time.perf_counter() - started, 1)})


def _train_challenger(settings: Any, log: Any, history_hours: float, horizon: Any) -> None:
    """A second version, trained on the last half of the history only (the half before
    warms its features), made the ``challenger``: the service scores it in shadow."""
    from training.promote import set_challenger
    from training.retrain import train_and_register
    from training.sources import from_log
    from training.train import BadTrainingData

    half = history_hours / 2
    try:
        with JobProgress("demo", names=TRAINING_STAGES) as report:
            source = from_log(log, window_hours=half, warmup_hours=half)
            trained = train_and_register(
                source,
                wiring.dataset_spec(settings, horizon.horizon_s),
                wiring.train_config(settings),
                wiring.tracking(settings),
                progress=report,
                tags={"job": "demo-challenger"},
                horizon=horizon,
            )
    except BadTrainingData as e:
        console.print(f"[yellow]no challenger:[/] the last {half:g} h are too few: {e}")
        return
    version = trained.logged.version
    set_challenger(
        wiring.model_registry(settings),
        version,
        actor="demo",
        note=f"demo: trained on the last {half:g} h of the history",
    )
    console.print(f"challenger: version {version}, trained on the last {half:g} h, in shadow")


def _run_live(
    settings: Any,
    url: str,
    speed: float,
    history_hours: float,
    seed: int,
    port: int,
    node_api_port: int,
    duration: float | None,
    interrupted: list[bool],
) -> dict[str, Any]:
    from provisioner import demo_processes

    options = demo_processes.DemoOptions(
        speed=speed,
        history_hours=history_hours,
        seed=seed,
        port=demo_processes.free_port(port),
        node_api_port=demo_processes.free_port(node_api_port),
        duration_s=duration,
    )
    anchor = time.time()
    run = demo_processes.Demo(settings, options, url, anchor, secrets.token_urlsafe(16))

    def wait_for(what: str, probe: Any) -> None:
        def ready() -> bool:
            _stop_if_asked(interrupted)
            return bool(probe())

        demo_processes.wait_for(what, ready, run)

    try:
        with console.status("starting the node API simulator"):
            run.start("node-api", "node-api", "--port", str(options.node_api_port))
            wait_for("the node API", lambda: demo_processes.answers(run.node_api_url + "/"))
        with console.status("starting the service (model, warm nodes)"):
            run.start("service", "serve", "--port", str(options.port), "--log-level", "warning")
            wait_for("the service", lambda: demo_processes.answers(run.service_url + "/readyz"))
            wait_for("the champion", lambda: _model_loaded(run))
            wait_for("the warm nodes", lambda: _warm(run, settings.min_ready))
        run.start(
            "simulator",
            "simulate",
            "--workload",
            "seed",
            "--realtime",
            "--seed",
            str(seed),
            "--start",
            repr(anchor - history_hours * 3600),
        )
        _where_to_look(run, settings)
        deadline = None if duration is None else time.monotonic() + duration
        with console.status("running") as line:
            while not interrupted[0] and (deadline is None or time.monotonic() < deadline):
                run.check_alive()
                numbers = demo_processes.status(run)
                line.update(
                    f"connects {numbers['connects']}, instant rate "
                    f"{numbers['instant_rate']:.3f}, efficiency {numbers['efficiency']:.2f}, "
                    f"nodes {numbers['nodes']['ready']} ready / "
                    f"{numbers['nodes']['allocated']} allocated / "
                    f"{numbers['nodes']['booting']} booting (Ctrl-C to stop)"
                )
                time.sleep(1.0)
        summary = demo_processes.status(run)
    finally:
        with console.status("stopping"):
            run.stop()
    console.print("stopped: every process the demo started has ended")
    return summary | {"speed": speed, "ran_s": duration}


def _model_loaded(run: Any) -> bool:
    from provisioner import demo_processes

    return bool(demo_processes.get_json(run.service_url + "/v1/model").get("source") == "model")


def _warm(run: Any, min_ready: int) -> bool:
    from provisioner import demo_processes

    counts = demo_processes.get_json(run.service_url + "/v1/pool")["counts"]
    return bool(counts["ready"] >= min_ready)


def _where_to_look(run: Any, settings: Any) -> None:
    console.print(
        "\n[bold]predictive-provisioner is running[/]\n"
        f"  dashboard     {run.service_url}/\n"
        f"  API docs      {run.service_url}/docs\n"
        f"  metrics       {run.service_url}/metrics\n"
        f"  node API      {run.node_api_url}/api/efficiency\n"
        f"  MLflow UI     .venv/bin/mlflow ui --backend-store-uri "
        f"{wiring.tracking_uri(settings)} --port 5000\n"
        f"  logs          {settings.home / 'demo-logs'}\n"
    )


def _stop_if_asked(interrupted: list[bool]) -> None:
    from provisioner import demo_processes

    if interrupted[0]:
        raise demo_processes.DemoError("interrupted")


def _interruptible() -> list[bool]:
    """A flag set by Ctrl-C or SIGTERM, so that the demo stops its processes in order."""
    flag = [False]

    def stop(signum: int, frame: FrameType | None) -> None:
        if flag[0]:
            raise KeyboardInterrupt
        flag[0] = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    return flag
