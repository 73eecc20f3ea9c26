"""`streamscore dashboard`: the live web page (kept out of cli.py, which holds the pipeline commands)."""

from __future__ import annotations

import threading
from typing import Annotated

import typer
from rich.console import Console

from streamscore.cli_options import Bootstrap, LogJson, Verbose, settings_from, stop_on_signals
from streamscore.shared.config import Settings

console = Console()

Port = Annotated[int, typer.Option(min=0, max=65535, help="port the dashboard listens on (0 = a free one)")]
Host = Annotated[str, typer.Option(
    help="address the dashboard listens on (0.0.0.0: every interface; the page has no login)")]


def dashboard(port: Port = 8050, host: Host = "127.0.0.1", bootstrap: Bootstrap = None, log_json: LogJson = False,
              verbose: Verbose = False) -> None:
    """Serve a live web page of the stream until Ctrl-C.

    It follows the evaluation topic (accuracy per model version over time, throughput, latency
    p50/p99 from produced-at to scored-at, a confusion matrix per version, the latest misclassified
    digits, drawn from the images topic), the dead-letter topic (by reason) and the models topic
    (models in force and their roles), all read from the beginning, and pushes updates to the
    page with server-sent events. Served predictions only (champion or ensemble, never shadow),
    each (image id, model version) counted once. The same numbers as JSON: GET /api/summary.
    Scripts and styles come from the package: it works without internet.
    """
    settings = settings_from(log_json, verbose, kafka_bootstrap=bootstrap)
    serve_dashboard(settings, host, port, stop_on_signals())


def serve_dashboard(settings: Settings, host: str, port: int, stop: threading.Event) -> None:
    """Start the dashboard on ``settings``' topics, print its URL, serve until ``stop`` (Ctrl-C) or a reader fails."""
    from streamscore.dashboard import Dashboard, serve_until
    from streamscore.shared.kafka import ensure_topics

    ensure_topics(settings)  # a topic created later would be read from partition 0 only
    with Dashboard(settings, host=host, port=port) as board:
        console.print(f"dashboard on [bold]{board.url}[/] (JSON: {board.url}api/summary); Ctrl-C stops it",
                      soft_wrap=True)
        serve_until(board, stop)
