"""``provisioner node-api``: the seed-compatible node API simulator."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from provisioner import wiring
from provisioner.cli.common import (
    console,
    graceful_signals,
    literal_help,
    print_json,
    settings_of,
)
from provisioner.settings import Settings
from simulation.nodes.boot import SPEC_FORMS

if TYPE_CHECKING:
    from simulation.nodes.fleet import NodeFleet


def register(app: typer.Typer) -> None:
    app.command("node-api")(node_api)


def node_api(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 7777,
    boot: Annotated[
        str | None,
        typer.Option(
            help=literal_help(f"Boot time: {SPEC_FORMS}, seconds (default: PROVISIONER_NODE_BOOT).")
        ),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed for node ids and boot times (random if unset).")
    ] = None,
) -> None:
    """Serve the node API: nodes boot, become ready and announce it on node:status.

    Speaks the original node API's HTTP and pub/sub contract (docs/node-api.md), on the
    shared clock (PROVISIONER_SPEED) and the channel prefix (PROVISIONER_CHANNEL_PREFIX).
    Stop it with Ctrl-C or SIGTERM; it prints its efficiency report as JSON on exit.
    """
    import asyncio
    import logging
    import random

    from simulation.nodes.boot import parse_boot_time
    from simulation.nodes.fleet import NodeFleet

    settings = settings_of(ctx)
    try:
        boot_time = parse_boot_time(settings.node_boot if boot is None else boot)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--boot") from e
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    fleet = NodeFleet(boot_time, random.Random(seed))
    with wiring.redis_url(settings) as url:
        report = asyncio.run(_serve(settings, url, fleet, host, port))
    print_json(report)


async def _serve(
    settings: Settings, url: str, fleet: NodeFleet, host: str, port: int
) -> dict[str, object]:
    import redis.asyncio
    import uvicorn
    from redis.exceptions import RedisError

    from service.redact import redact_url
    from simulation.nodes.api import create_node_api, node_api_state

    client = redis.asyncio.from_url(url, socket_connect_timeout=5.0)
    try:
        try:
            await client.ping()
        except (RedisError, OSError) as e:
            console.print(f"[red]error:[/] cannot reach Redis at {redact_url(url)}: {e}")
            raise typer.Exit(1) from e
        app = create_node_api(
            fleet,
            client,
            clock=wiring.clock(settings),
            channel_prefix=settings.channel_prefix,
            limits=wiring.limits(settings),
        )
        server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="info"))
        console.print(f"node API on http://{host}:{port} (boot {fleet.boot}; Ctrl-C to stop)")
        with graceful_signals():
            await server.serve()
        if not server.started:
            console.print(f"[red]error:[/] the node API could not listen on {host}:{port}")
            raise typer.Exit(1)
        return node_api_state(app).report().model_dump() | {"nodes_live": len(fleet.live())}
    finally:
        await client.aclose()
