"""``provisioner serve``: the online service (API, consumer, scaler) with uvicorn."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from provisioner import wiring
from provisioner.cli.common import console, graceful_signals, print_json, settings_of
from provisioner.settings import Settings


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8000,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    memory_snapshots: Annotated[
        Path | None,
        typer.Option(
            file_okay=False,
            exists=True,
            writable=True,
            help="Folder for tracemalloc snapshots: each SIGUSR1 writes one there (traces "
            "every allocation from the start with PYTHONTRACEMALLOC=N set, slower; for "
            "looking into memory).",
        ),
    ] = None,
) -> None:
    """Run the service: consume the event log, keep warm nodes, serve the API.

    With no settings: the embedded Redis, the local MLflow store and the built-in
    simulated node API. Stop it with Ctrl-C or SIGTERM; it saves its state and prints a
    JSON summary.
    """
    import asyncio
    import logging

    settings = settings_of(ctx)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per node API call
    with wiring.redis_url(settings) as url:
        summary = asyncio.run(_serve(settings, url, host, port, log_level, memory_snapshots))
    print_json(summary)


async def _serve(
    settings: Settings,
    url: str,
    host: str,
    port: int,
    log_level: str,
    memory_snapshots: Path | None,
) -> dict[str, object]:
    import asyncio

    import uvicorn

    from provisioner.service_wiring import running_service
    from service import memory_snapshots as snapshots
    from service.redact import redact_url

    nodes = redact_url(settings.node_api_url) if settings.node_api_url else "built-in simulator"

    if memory_snapshots is not None:
        snapshots.on_signal(asyncio.get_running_loop(), memory_snapshots)
    async with running_service(settings, url) as running:
        server = uvicorn.Server(
            uvicorn.Config(running.app, host=host, port=port, log_level=log_level)
        )
        console.print(
            f"service on http://{host}:{port} (docs: /docs, metrics: /metrics); "
            f"nodes: {nodes}; Ctrl-C to stop"
        )
        with graceful_signals():
            await server.serve()
        if not server.started:
            console.print(f"[red]error:[/] the service could not start on {host}:{port}")
            raise typer.Exit(1)
        service = running.service
        engine = service.engine
        return {
            "metrics": engine.metrics(service.clock.now()).to_dict(),
            "watermark": service.watermark,
            "model": service.watcher.info() if service.watcher else None,
        }
