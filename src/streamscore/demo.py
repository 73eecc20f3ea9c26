"""`streamscore demo`: the whole pipeline on the embedded default, in one process.

Embedded broker → produce the bundled MNIST test set (plus a few malformed
messages) → score in DuckDB with the first model (v1) and the second (v2) as its shadow (scored on
every image, never served) → promote the second half-way → evaluate the evaluation topic → a table
(accuracy per version and role), a confusion-matrix PNG, the misclassified digits (misclassified.png,
pixels read back from the images topic) and a JSON report. Models are signed with a throwaway key.
With a :class:`DashboardAddress` the live dashboard follows the run and stays up after it, with the
broker, until Ctrl-C. ``models`` picks the two bundled versions (``--models v2,cnn``: the seed net,
then the CNN).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Producer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from streamscore.backends import open_configured_backend
from streamscore.broker import EmbeddedBroker
from streamscore.consumers.evaluator import Evaluation, write_reports
from streamscore.consumers.prediction_reader import read_predictions
from streamscore.consumers.scorer import Scorer
from streamscore.dashboard import Dashboard, serve_until
from streamscore.model.keys import public_pem
from streamscore.models import bundled_model
from streamscore.ops.gallery import draw_gallery
from streamscore.ops.run_report import report_extras
from streamscore.ops.topic_gallery import topic_gallery
from streamscore.ops.topic_summary import DeadLetters, count_dead_letters
from streamscore.producers.images import produce_images
from streamscore.producers.lifecycle import TopicView, publish_with_role, write_snapshot
from streamscore.shared.config import Settings
from streamscore.shared.kafka import ensure_topics, flush, make_producer
from streamscore.shared.malformed import DEMO_MALFORMED as MALFORMED
from streamscore.shared.mnist import load_split


@dataclass
class DemoResult:
    produced: int
    scored: int
    dead_lettered: int
    seconds: float
    evaluation: Evaluation
    png: Path
    report: Path
    rate: float | None
    dead_letters: DeadLetters
    gallery: Path | None = None


@dataclass(frozen=True)
class DashboardAddress:
    """Where the demo's dashboard listens; ``until`` gives the event that ends it (Ctrl-C handlers)."""

    host: str
    port: int
    until: Callable[[], threading.Event]


def _send_malformed(producer: Producer, topic: str) -> None:
    for message in MALFORMED:
        producer.produce(topic, key=message.key, value=message.value, headers=message.headers)
    flush(producer)


def run_demo(settings: Settings, out_dir: Path, rate: float | None, limit: int | None, console: Console,
             dashboard: DashboardAddress | None = None,
             on_done: Callable[[DemoResult], None] | None = None, models: tuple[int, int] = (1, 2)) -> DemoResult:
    """Run the demo; ``on_done`` gets the result while the broker is still up (then the dashboard stays)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    db_path = out_dir / "demo.duckdb"
    for stale in (db_path, db_path.with_suffix(".duckdb.wal")):
        stale.unlink(missing_ok=True)
    split = load_split("test")
    total = min(limit or len(split), len(split))
    with EmbeddedBroker(log_path=out_dir / "broker.log") as broker, ExitStack() as closing:
        settings = settings.with_overrides(kafka_bootstrap=broker.bootstrap, backend=f"duckdb:///{db_path.resolve()}")
        console.print(f"embedded broker on [bold]{broker.bootstrap}[/] (memory only: gone when the demo ends); "
                      f"DuckDB at [bold]{db_path}[/]")
        ensure_topics(settings)
        board = None
        if dashboard is not None:
            board = closing.enter_context(Dashboard(settings, host=dashboard.host, port=dashboard.port))
            console.print(f"live dashboard on [bold]{board.url}[/]", soft_wrap=True)
        first, second = bundled_model(models[0]), bundled_model(models[1])
        # a throwaway signing key: the demo's consumer accepts only models signed by it (model/signing.py)
        sign_key = Ed25519PrivateKey.generate()
        settings = settings.with_overrides(model_public_key=public_pem(sign_key))
        publish_with_role(settings, first, "champion", sign_key=sign_key)
        lifecycle = publish_with_role(settings, second, "shadow", sign_key=sign_key)
        lifecycle_producer = make_producer(settings)  # warm: the promotion lands when it is sent
        stop = threading.Event()
        scorer = Scorer(settings, open_configured_backend(settings), stop=stop)
        failures: list[BaseException] = []

        def run_scorer() -> None:
            try:
                scorer.run()
            except BaseException as exc:  # surfaced in the main thread
                failures.append(exc)
                stop.set()

        produced = [0]
        started = time.monotonic()
        consumer_thread = threading.Thread(target=run_scorer, name="scorer", daemon=True)
        consumer_thread.start()
        columns = (TextColumn("{task.description:<26}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console) as progress:
            produce_task = progress.add_task("produced → mnist.images", total=total)
            score_task = progress.add_task("scored in DuckDB", total=total)

            def on_progress(count: int) -> None:
                produced[0] += count
                progress.advance(produce_task, count)

            def run_producer() -> None:
                try:
                    # the malformed messages go first: they also warm up the idempotent producer
                    producer = make_producer(settings)
                    _send_malformed(producer, settings.images_topic)
                    produce_images(settings, split, limit=total, rate=rate, stop=stop, progress=on_progress,
                                   producer=producer)
                except BaseException as exc:
                    failures.append(exc)
                    stop.set()

            progress.console.print("waiting for the consumer to join its group…")
            scorer.ready.wait(30)
            producer_thread = threading.Thread(target=run_producer, name="producer", daemon=True)
            producer_thread.start()
            promoted = False
            while not stop.is_set():
                scored = scorer.stats.scored
                progress.update(score_task, completed=scored,
                                description=f"scored in DuckDB (v{scorer.stats.model_version or '-'})")
                if not promoted and produced[0] >= total // 2:
                    progress.console.print(f"promoting v{second.version} (the shadow) to champion on "
                                           f"{settings.models_topic} after {produced[0]:,} images were produced")
                    # the demo published every record itself: no need to read the topic back
                    write_snapshot(settings, TopicView(lifecycle, {first.version, second.version}),
                                   lifecycle.promote(second.version), lifecycle_producer)
                    promoted = True
                if scored >= total and scorer.stats.dead_lettered >= len(MALFORMED):
                    break
                time.sleep(0.1)
            progress.update(score_task, completed=scorer.stats.scored)
            stop.set()
            producer_thread.join(30)
            consumer_thread.join(30)
        if failures:
            raise failures[0]
        elapsed = time.monotonic() - started
        with console.status("reading the evaluation topic…"):
            evaluation = read_predictions(settings, expect=total)
        dead_letters = count_dead_letters(settings)
        extras = report_extras(
            settings, dead_letters, command="demo", rate=rate, limit=limit, seconds=round(elapsed, 1),
            produced={"images": produced[0], "malformed": len(MALFORMED)}, scored=scorer.stats.scored,
            dead_lettered_by_the_consumer=scorer.stats.dead_lettered)
        with console.status("reading the misclassified digits' pixels from the images topic…"):
            gallery = topic_gallery(settings, evaluation)
        png, report = write_reports(evaluation, out_dir, extra=extras | {"gallery": gallery.to_json()})
        digits = draw_gallery(gallery.items, out_dir, versions=gallery.versions, wrong=gallery.wrong,
                              missing=gallery.missing)
        result = DemoResult(produced[0], scorer.stats.scored, scorer.stats.dead_lettered, elapsed, evaluation, png,
                            report, rate, dead_letters, digits)
        if on_done is not None:
            on_done(result)
        if board is not None and dashboard is not None:
            until = dashboard.until()  # Ctrl-C handled from here on, before the line that invites it
            console.print(f"the dashboard stays on [bold]{board.url}[/] with the broker ({broker.bootstrap}); "
                          "Ctrl-C stops both", soft_wrap=True)
            serve_until(board, until)
    return result


def summary_table(result: DemoResult) -> Table:
    table = Table(title="streamscore demo", show_header=True, header_style="bold")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("images produced", f"{result.produced:,}")
    table.add_row("images scored (in DuckDB)", f"{result.scored:,}")
    reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(result.dead_letters.by_reason.items()))
    table.add_row("dead-lettered (mnist.dlq)", f"{result.dead_letters.total:,}" + (f" ({reasons})" if reasons else ""))
    reports = list(result.evaluation.by_role())
    for report in reports:
        accuracy = f"{report.accuracy:.4f}" if report.accuracy is not None else "n/a"
        table.add_row(f"accuracy model v{report.version} ({report.role})",
                      f"{accuracy} ({report.correct:,}/{report.labelled:,})")
    served = [(r.version, r.accuracy) for r in reports if r.role != "shadow" and r.accuracy is not None]
    if len(served) >= 2 and served[0][0] != served[-1][0]:
        (before, low), (after, high) = served[0], served[-1]
        table.add_row(f"accuracy step v{before} → v{after} (served)", f"{high - low:+.4f}")
    for name, value in result.evaluation.latency_percentiles().items():
        if name != "max_ms":
            table.add_row(f"latency {name.removesuffix('_ms')}", f"{value:,.0f} ms")
    scoring_rate = result.evaluation.throughput()
    if scoring_rate is not None:
        paced = f"; producer paced at {result.rate:,.0f}/s" if result.rate else ""
        table.add_row("throughput", f"{scoring_rate:,.0f} images/s (first → last prediction{paced})")
    table.add_row("wall clock", f"{result.seconds:,.1f} s (including broker start and group join)")
    table.add_row("confusion matrix", str(result.png))
    if result.gallery is not None:
        table.add_row("misclassified digits", str(result.gallery))
    table.add_row("JSON report", str(result.report))
    return table
