"""`streamscore db …`: schema and retention commands (kept out of cli.py, which holds the others)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from streamscore.cli_options import BackendOpt, settings_from

db_app = typer.Typer(help="Database schema and retention commands.", no_args_is_help=True)
console = Console()


@db_app.command("init")
def db_init(backend: BackendOpt = None) -> None:
    """Create the schema (tables, in-database code) if missing; safe to run twice."""
    from streamscore.backends import open_configured_backend

    settings = settings_from(backend=backend)
    with open_configured_backend(settings) as database:
        database.init_schema()
        console.print(f"schema ready in {database.url.masked()}")


@db_app.command("purge")
def db_purge(
    older_than: Annotated[str, typer.Option(
        "--older-than", help="delete images stored longer ago than this (e.g. 7d, 12h, 30m) and their predictions")],
    backend: BackendOpt = None,
    yes: Annotated[bool, typer.Option("--yes", help="do not ask for confirmation")] = False,
) -> None:
    """Delete old images and their predictions (retention); offsets and models are never purged."""
    from streamscore.backends import open_configured_backend
    from streamscore.ops.purge import purge_database

    settings = settings_from(backend=backend)
    database = open_configured_backend(settings)
    report = purge_database(database, older_than, lambda question: yes or typer.confirm(question))
    if report is None:
        console.print("nothing deleted")
        raise typer.Exit(1)
    console.print(f"deleted {report.images:,} image(s) and {report.predictions:,} prediction(s) stored more than "
                  f"{older_than} ago from {database.url.masked()}")
