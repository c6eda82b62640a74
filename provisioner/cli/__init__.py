"""The ``provisioner`` command line. Settings are read once here and handed down."""

from __future__ import annotations

import typer
from pydantic import ValidationError

from provisioner.cli import bench, demo, events, ml, node_api, serve, simulate
from provisioner.cli.common import console
from provisioner.settings import Settings

app = typer.Typer(
    name="provisioner",
    help="Keeps warm nodes ready for users before they connect.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(ctx: typer.Context) -> None:
    try:
        ctx.obj = Settings()
    except ValidationError as e:
        console.print(f"[red]error:[/] invalid settings in the environment:\n{e}")
        raise typer.Exit(2) from e


events.register(app)
simulate.register(app)
node_api.register(app)
ml.register(app)
serve.register(app)
demo.register(app)
bench.register(app)


def main() -> None:
    app()
