"""`streamscore demo`: the whole pipeline on the embedded default, in one process.

Embedded broker → produce the bundled MNIST test set (plus a few malformed
messages) → score in DuckDB with model v1 and v2 as its shadow (scored on every
image, never served) → promote v2 half-way → evaluate the
evaluation topic → a table (accuracy per version and role), a confusion-matrix PNG
and a JSON report.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Producer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from streamscore.backends import open_configured_backend
from streamscore.broker import EmbeddedBroker
from streamscore.consumers.evaluator import Evaluation, read_predictions, write_reports
from streamscore.consumers.scorer import Scorer
from streamscore.models import bundled_model
from streamscore.ops.run_report import report_extras
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


def _send_malformed(producer: Producer, topic: str) -> None:
    for message in MALFORMED:
        producer.produce(topic, key=message.key, value=message.value, headers=message.headers)
    flush(producer)


def run_demo(settings: Settings, out_dir: Path, rate: float | None, limit: int | None,
             console: Console) -> DemoResult:
    out_dir.mkdir(parents=True, exist_ok=True)
    db_path = out_dir / "demo.duckdb"
    for stale in (db_path, db_path.with_suffix(".duckdb.wal")):
        stale.unlink(missing_ok=True)
    split = load_split("test")
    total = min(limit or len(split), len(split))
    with EmbeddedBroker(log_path=out_dir / "broker.log") as broker:
        settings = settings.with_overrides(kafka_bootstrap=broker.bootstrap, backend=f"duckdb:///{db_path.resolve()}")
        console.print(f"embedded broker on [bold]{broker.bootstrap}[/] (memory only: gone when the demo ends); "
                      f"DuckDB at [bold]{db_path}[/]")
        ensure_topics(settings)
        v1, v2 = bundled_model(1), bundled_model(2)
        publish_with_role(settings, v1, "champion")
        lifecycle = publish_with_role(settings, v2, "shadow")
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
                    progress.console.print(f"promoting v2 (the shadow) to champion on {settings.models_topic} "
                                           f"after {produced[0]:,} images were produced")
                    # the demo published every record itself: no need to read the topic back
                    write_snapshot(settings, TopicView(lifecycle, {1, 2}), lifecycle.promote(2), lifecycle_producer)
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
        png, report = write_reports(evaluation, out_dir, extra=extras)
    return DemoResult(produced[0], scorer.stats.scored, scorer.stats.dead_lettered, elapsed, evaluation, png, report,
                      rate, dead_letters)


def summary_table(result: DemoResult) -> Table:
    table = Table(title="streamscore demo", show_header=True, header_style="bold")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("images produced", f"{result.produced:,}")
    table.add_row("images scored (in DuckDB)", f"{result.scored:,}")
    reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(result.dead_letters.by_reason.items()))
    table.add_row("dead-lettered (mnist.dlq)", f"{result.dead_letters.total:,}" + (f" ({reasons})" if reasons else ""))
    for report in result.evaluation.by_role():
        accuracy = f"{report.accuracy:.4f}" if report.accuracy is not None else "n/a"
        table.add_row(f"accuracy model v{report.version} ({report.role})",
                      f"{accuracy} ({report.correct:,}/{report.labelled:,})")
    for name, value in result.evaluation.latency_percentiles().items():
        if name != "max_ms":
            table.add_row(f"latency {name.removesuffix('_ms')}", f"{value:,.0f} ms")
    scoring_rate = result.evaluation.throughput()
    if scoring_rate is not None:
        paced = f"; producer paced at {result.rate:,.0f}/s" if result.rate else ""
        table.add_row("throughput", f"{scoring_rate:,.0f} images/s (first → last prediction{paced})")
    table.add_row("wall clock", f"{result.seconds:,.1f} s (including broker start and group join)")
    table.add_row("confusion matrix", str(result.png))
    table.add_row("JSON report", str(result.report))
    return table
