"""`serve`: the web page and the REST API."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from digitrec.commands.common import DatabaseOpt, ModelOpt


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            show_default=False,
            help="Worker processes. Default: one per core this process may use "
            "(its CPU affinity, e.g. a container's cpuset).",
        ),
    ] = None,
    model: ModelOpt = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Where corrections are stored. Default: the user's data directory."),
    ] = None,
    database: DatabaseOpt = None,
) -> None:
    """Serve the web page and the REST API."""
    from digitrec.serve import run_server

    run_server(
        host=host, port=port, workers=workers, model=model, data_dir=data_dir, database=database
    )
