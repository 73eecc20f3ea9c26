"""`streamscore demo`: the whole pipeline on the embedded broker and DuckDB (kept out of cli.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from streamscore.cli_dashboard import Host, Port
from streamscore.cli_options import settings_from, stop_on_signals

console = Console()


def demo(
    out: Annotated[Path, typer.Option(help="folder for the DuckDB file and the reports")] = Path("out/demo"),
    rate: Annotated[float, typer.Option(min=0, help="images/s to produce (0 = as fast as possible)")] = 1000,
    limit: Annotated[int | None, typer.Option(min=1, help="images to stream (default: all 10,000)")] = None,
    scorer: Annotated[str | None, typer.Option(help="DuckDB scorer: udf or sql")] = None,
    dashboard: Annotated[bool, typer.Option(
        "--dashboard", help="serve the live dashboard during the run and keep it (and the broker) up "
                            "after it, until Ctrl-C")] = False,
    port: Port = 8050,
    host: Host = "127.0.0.1",
    models: Annotated[str, typer.Option(
        help="the bundled model served first and the one published half-way: v1…v4 or seed, dense, cnn "
             "(e.g. v2,cnn)")] = "v1,v2",
) -> None:
    """Run the whole pipeline on the embedded broker and DuckDB, swapping models half-way."""
    from streamscore.demo import DashboardAddress, run_demo, summary_table
    from streamscore.models import bundled_version

    pair = [bundled_version(spec) for spec in models.split(",") if spec.strip()]
    if len(pair) != 2 or pair[0] >= pair[1]:
        raise typer.BadParameter("--models takes two bundled models, the second newer, e.g. v1,v2 or v2,cnn")

    settings = settings_from(duckdb_scorer=scorer)
    board = DashboardAddress(host, port, stop_on_signals) if dashboard else None
    run_demo(settings, out, rate or None, limit, console, dashboard=board,
             on_done=lambda result: console.print(summary_table(result)), models=(pair[0], pair[1]))
