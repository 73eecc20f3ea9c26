"""`streamscore evaluate`: the accuracy table, the live view of `evaluate --follow`, the reports."""

from __future__ import annotations

import threading
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table

from streamscore.consumers.auto_rollback import AutoRollback
from streamscore.consumers.evaluator import Evaluation, write_reports
from streamscore.consumers.prediction_reader import read_predictions
from streamscore.ops.gallery import draw_gallery
from streamscore.ops.run_report import report_extras
from streamscore.ops.topic_gallery import topic_gallery
from streamscore.shared.config import Settings


def evaluate_and_report(settings: Settings, stop: threading.Event, *, follow: bool, expect: int | None, idle: float,
                        out: Path, console: Console, err_console: Console,
                        auto_rollback: AutoRollback | None = None) -> Evaluation:
    """Read the evaluation topic (live with ``follow``), print the table, write report.json, confusion.png
    and misclassified.png (pixels from the images topic: ops/topic_gallery.py).

    With ``auto_rollback`` (``--follow`` only) every new prediction is also judged by it.
    """
    if follow:
        evaluation = follow_predictions(settings, stop, console, auto_rollback)
    else:
        with err_console.status(f"reading {settings.predictions_topic}…"):
            evaluation = read_predictions(settings, expect=expect, idle_timeout=idle, stop=stop)
    extras = report_extras(settings, with_backend=False, command="evaluate", follow=follow, expect=expect)
    with err_console.status(f"reading the misclassified digits' pixels from {settings.images_topic}…"):
        gallery = topic_gallery(settings, evaluation)
    png, report = write_reports(evaluation, out, extra=extras | {"gallery": gallery.to_json()})
    digits = draw_gallery(gallery.items, out, versions=gallery.versions, wrong=gallery.wrong, missing=gallery.missing)
    console.print(evaluation_table(evaluation))
    console.print(f"confusion matrix: {png}\nmisclassified digits: {digits}\nJSON report: {report}")
    return evaluation


def follow_predictions(settings: Settings, stop: threading.Event, console: Console,
                       auto_rollback: AutoRollback | None = None) -> Evaluation:
    """Read the evaluation topic live, redrawing the table every second until Ctrl-C."""
    evaluation = Evaluation(on_new=auto_rollback.observe if auto_rollback is not None else None)
    failures: list[BaseException] = []

    def read() -> None:
        try:
            read_predictions(settings, follow=True, stop=stop, evaluation=evaluation)
        except BaseException as exc:  # surfaced in the main thread, as one line at the CLI boundary
            failures.append(exc)
            stop.set()

    reader = threading.Thread(target=read, name="evaluation-reader", daemon=True)
    reader.start()
    with Live(evaluation_table(evaluation), console=console, refresh_per_second=2) as live:
        while not stop.wait(1.0):
            live.update(evaluation_table(evaluation))
    reader.join(10)
    if failures:
        raise failures[0]
    return evaluation


def evaluation_table(evaluation: Evaluation) -> Table:
    """Accuracy per model version, one row per (backend, version) when several backends are on the topic."""
    table = Table(title="accuracy per model version")
    for column in ("backend", "model version", "role", "images", "labelled", "correct", "accuracy"):
        table.add_column(column, justify="right")
    for report in evaluation.by_backend_and_role():
        accuracy = f"{report.accuracy:.4f}" if report.accuracy is not None else "n/a"
        counts = (f"{report.scored:,}", f"{report.labelled:,}", f"{report.correct:,}")
        table.add_row(report.backend or "?", str(report.version), report.role, *counts, accuracy)
    latency = evaluation.latency_percentiles()
    captions = []
    if latency:
        captions.append("latency " + ", ".join(f"{k.removesuffix('_ms')} {v:,.0f} ms" for k, v in latency.items()))
    rejected = sorted({(e.model_version or 0, e.reason) for e in list(evaluation.rejections.values())})
    if rejected:
        captions.append("models rejected: " + ", ".join(f"v{version or '?'} {reason}" for version, reason in rejected))
    if captions:
        table.caption = "\n".join(captions)
    return table
