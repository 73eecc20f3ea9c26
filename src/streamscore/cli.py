"""`streamscore …` — thin typer commands over the library; settings built once here.

Every option also reads its STREAMSCORE_* variable (see streamscore.shared.config).
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from streamscore.errors import StreamscoreError
from streamscore.logs import setup_logging
from streamscore.shared.config import Settings, load_settings

app = typer.Typer(
    help="Stream MNIST images through Kafka, score them inside a database, hot-swap models over Kafka.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema commands.", no_args_is_help=True)
app.add_typer(db_app, name="db")
console = Console()
err_console = Console(stderr=True)
log = logging.getLogger("streamscore")

Bootstrap = Annotated[str | None, typer.Option(
    "--bootstrap", help="Kafka bootstrap servers [STREAMSCORE_KAFKA_BOOTSTRAP]")]
BackendOpt = Annotated[str | None, typer.Option(
    "--backend", help="duckdb:///path.db | postgresql://… | oracle://… | kinetica://… [STREAMSCORE_BACKEND]")]
Group = Annotated[str | None, typer.Option("--group", help="consumer group [STREAMSCORE_GROUP]")]
LogJson = Annotated[bool, typer.Option("--log-json", help="structured JSON logs on stderr")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="debug logging")]


def settings_from(log_json: bool = False, verbose: bool = False, **overrides: Any) -> Settings:
    settings = load_settings(**overrides)
    setup_logging("DEBUG" if verbose else "INFO", json_lines=log_json or settings.log_json)
    return settings


def stop_on_signals() -> threading.Event:
    """SIGINT/SIGTERM set the event: the loop finishes its batch, commits and closes."""
    stop = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        log.info("%s received: finishing what is in hand, then stopping (again to force)",
                 signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="folder for the DuckDB file and the reports")] = Path("out/demo"),
    rate: Annotated[float, typer.Option(help="images/s to produce (0 = as fast as possible)")] = 1000,
    limit: Annotated[int | None, typer.Option(help="images to stream (default: all 10,000)")] = None,
    scorer: Annotated[str | None, typer.Option(help="DuckDB scorer: udf or sql")] = None,
) -> None:
    """Run the whole pipeline on the embedded broker and DuckDB, swapping models half-way."""
    from streamscore.demo import run_demo, summary_table

    settings = settings_from(duckdb_scorer=scorer)
    result = run_demo(settings, out, rate or None, limit, console)
    console.print(summary_table(result))


@app.command()
def broker(
    port: Annotated[int, typer.Option(help="port on 127.0.0.1 (0 = a free one)")] = 9092,
) -> None:
    """Run the embedded Kafka-compatible broker (Tansu, memory only) in the foreground."""
    from streamscore.broker import EmbeddedBroker

    settings_from()
    stop = stop_on_signals()
    with EmbeddedBroker(port=port or None) as running:
        console.print(f"embedded broker listening; bootstrap: [bold]{running.bootstrap}[/]")
        console.print(f"export STREAMSCORE_KAFKA_BOOTSTRAP={running.bootstrap}   (Ctrl-C stops it)")
        while not stop.wait(0.5):
            pass


@app.command()
def produce(
    split: Annotated[str, typer.Option(help="train or test")] = "test",
    limit: Annotated[int | None, typer.Option(help="stop after this many images")] = None,
    rate: Annotated[float | None, typer.Option(help="images/s (token bucket); default unlimited")] = None,
    loop: Annotated[bool, typer.Option(help="repeat the split until stopped or --limit")] = False,
    bootstrap: Bootstrap = None,
    log_json: LogJson = False,
) -> None:
    """Stream MNIST images to the images topic (idempotent producer)."""
    from rich.progress import Progress

    from streamscore.producers.images import produce_images
    from streamscore.shared.kafka import ensure_topics
    from streamscore.shared.mnist import load_for

    if split not in ("train", "test"):
        raise typer.BadParameter("--split must be train or test")
    settings = settings_from(log_json, kafka_bootstrap=bootstrap)
    data = load_for(split, settings.mnist_dir)  # type: ignore[arg-type]
    ensure_topics(settings)
    total = limit if loop else min(limit or len(data), len(data))
    stop = stop_on_signals()
    with Progress(console=err_console) as progress:
        task = progress.add_task(f"→ {settings.images_topic}", total=total)
        report = produce_images(settings, data, limit=limit, rate=rate, loop=loop, stop=stop,
                                progress=lambda n: progress.advance(task, n))
    console.print(f"sent {report.sent:,}, delivered {report.delivered:,}, failed {report.failed:,}")
    for error in report.errors:
        err_console.print(f"[red]delivery error:[/] {error}")
    if report.failed:
        raise typer.Exit(1)


@app.command()
def consume(
    backend: BackendOpt = None,
    bootstrap: Bootstrap = None,
    group: Group = None,
    batch_size: Annotated[int | None, typer.Option(help="images per database batch (default 500)")] = None,
    linger_ms: Annotated[int | None, typer.Option(help="longest wait for a batch to fill (default 50)")] = None,
    log_json: LogJson = False,
    verbose: Verbose = False,
    workers: Annotated[int, typer.Option(
        help="consumer processes of the group on this machine (PostgreSQL; DuckDB takes one)")] = 1,
    metrics_port: Annotated[int | None, typer.Option(
        help="Prometheus /metrics and /healthz port, 0 = off; worker i uses port+i [STREAMSCORE_METRICS_PORT]")] = None,
    metrics_host: Annotated[str, typer.Option(help="address the metrics endpoint listens on")] = "0.0.0.0",
) -> None:
    """Consume images, store and score them in the database, publish predictions."""
    from streamscore.backends import open_configured_backend
    from streamscore.consumers.scorer import Scorer
    from streamscore.shared.kafka import ensure_topics

    settings = settings_from(log_json, verbose, backend=backend, kafka_bootstrap=bootstrap, group=group,
                             batch_size=batch_size, linger_ms=linger_ms, metrics_port=metrics_port)
    ensure_topics(settings)
    if workers != 1:
        from streamscore.consumers.workers import run_workers

        extra = ["--metrics-host", metrics_host] + (["--verbose"] if verbose else [])
        raise typer.Exit(run_workers(settings, workers, extra))
    database = open_configured_backend(settings)
    log.info("consuming %s as group %s into %s", settings.images_topic, settings.group, database.url.masked())
    stats = Scorer(settings, database, stop=stop_on_signals(), metrics_host=metrics_host).run()
    console.print(f"consumed {stats.consumed:,}, scored {stats.scored:,}, dead-lettered {stats.dead_lettered:,}")


@app.command()
def status(
    backend: BackendOpt = None,
    bootstrap: Bootstrap = None,
    group: Group = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
    no_database: Annotated[bool, typer.Option(help="do not open the database (stored offsets, models)")] = False,
) -> None:
    """Lag per partition, model versions and dead-letter count of a consumer group."""
    import json

    from streamscore.ops.status import collect_status, status_table

    settings = settings_from(backend=backend, kafka_bootstrap=bootstrap, group=group)
    # a database held open by a DuckDB consumer is locked: skip it rather than wait
    report = collect_status(settings, None if no_database else settings.backend_url,
                            embedded=settings.kafka_bootstrap.startswith("127.0.0.1"))
    if as_json:
        console.print_json(json.dumps(report.to_json()))
    else:
        console.print(status_table(report))


@app.command("publish-model")
def publish_model_command(
    path: Annotated[Path, typer.Argument(help="model artifact (.npz with manifest)", exists=True, dir_okay=False)],
    version: Annotated[int | None, typer.Option(help="publish under this version instead")] = None,
    bootstrap: Bootstrap = None,
) -> None:
    """Publish a model artifact to the compacted models topic (every consumer hot-swaps to it)."""
    from streamscore.model.artifact import load_artifact
    from streamscore.producers.models import publish_model
    from streamscore.shared.kafka import ensure_topics

    settings = settings_from(kafka_bootstrap=bootstrap)
    artifact = load_artifact(path)
    if version is not None:
        artifact = artifact.with_version(version)
    ensure_topics(settings)
    digest = publish_model(settings, artifact)
    console.print(f"published {artifact.name} v{artifact.version} to {settings.models_topic} (sha256 {digest[:12]}…)")


@app.command()
def evaluate(
    follow: Annotated[bool, typer.Option(help="keep reading live until Ctrl-C")] = False,
    expect: Annotated[int | None, typer.Option(help="stop once this many distinct images are seen")] = None,
    idle: Annotated[float, typer.Option(help="stop after this many seconds without new predictions")] = 3.0,
    out: Annotated[Path, typer.Option(help="folder for confusion.png and report.json")] = Path("out/evaluate"),
    bootstrap: Bootstrap = None,
) -> None:
    """Accuracy per model version, confusion matrix and latency from the evaluation topic."""
    from streamscore.consumers.evaluator import read_predictions, write_reports

    settings = settings_from(kafka_bootstrap=bootstrap)
    stop = stop_on_signals()
    if follow:
        evaluation = follow_predictions(settings, stop)
    else:
        with err_console.status(f"reading {settings.predictions_topic}…"):
            evaluation = read_predictions(settings, expect=expect, idle_timeout=idle, stop=stop)
    png, report = write_reports(evaluation, out)
    console.print(evaluation_table(evaluation))
    console.print(f"confusion matrix: {png}\nJSON report: {report}")


def follow_predictions(settings: Settings, stop: threading.Event) -> Any:
    """Read the evaluation topic live, redrawing the table every second until Ctrl-C."""
    from rich.live import Live

    from streamscore.consumers.evaluator import Evaluation, read_predictions

    evaluation = Evaluation()
    reader = threading.Thread(target=read_predictions, daemon=True,
                              kwargs={"settings": settings, "follow": True, "stop": stop, "evaluation": evaluation})
    reader.start()
    with Live(evaluation_table(evaluation), console=console, refresh_per_second=2) as live:
        while not stop.wait(1.0):
            live.update(evaluation_table(evaluation))
    reader.join(10)
    return evaluation


def evaluation_table(evaluation: Any) -> Table:
    table = Table(title="accuracy per model version")
    for column in ("model version", "images", "labelled", "correct", "accuracy"):
        table.add_column(column, justify="right")
    for report in evaluation.versions():
        accuracy = f"{report.accuracy:.4f}" if report.accuracy is not None else "n/a"
        counts = (f"{report.scored:,}", f"{report.labelled:,}", f"{report.correct:,}")
        table.add_row(str(report.version), *counts, accuracy)
    latency = evaluation.latency_percentiles()
    if latency:
        table.caption = "latency " + ", ".join(f"{k.removesuffix('_ms')} {v:,.0f} ms" for k, v in latency.items())
    return table


@app.command()
def train(
    out: Annotated[Path, typer.Option(help="where to write the artifact")] = Path("out/models/mlp.npz"),
    version: Annotated[int | None, typer.Option(
        help="model version (must be newer than the one serving; default: in the database the next "
             "after the installed ones, else 1)")] = None,
    steps: Annotated[int, typer.Option(help="SGD steps of --batch images")] = 30_000,
    batch: Annotated[int, typer.Option(help="batch size")] = 100,
    learning_rate: Annotated[float, typer.Option(help="SGD learning rate")] = 0.5,
    hidden: Annotated[str, typer.Option(help="hidden layer sizes, comma separated")] = "100",
    seed: Annotated[int, typer.Option(help="random seed")] = 2016,
    publish: Annotated[bool, typer.Option(
        help="publish the artifact to the models topic (always with --backend kinetica://…)")] = False,
    backend: BackendOpt = None,
    bootstrap: Bootstrap = None,
    in_database: Annotated[bool, typer.Option(
        "--in-database", help="train inside the configured backend (one that implements training: kinetica)")] = False,
) -> None:
    """Train the seed network (784-100-10, sigmoid, softmax, SGD 0.5) with TensorFlow.

    With --in-database (or --backend naming a backend that trains, e.g. kinetica://…) the training
    runs inside the database (Kinetica: a numpy UDF) and the new model is published to the models topic.
    """
    from rich.progress import Progress

    from streamscore.model.trainer import TrainConfig
    from streamscore.model.trainer import train as run_training
    from streamscore.shared.mnist import load_split

    settings = settings_from(kafka_bootstrap=bootstrap, backend=backend)
    sizes = tuple(int(h) for h in hidden.split(",") if h.strip())
    config = TrainConfig(settings.model_name, 1 if version is None else version, sizes, "sigmoid", steps, batch,
                         learning_rate, seed)
    from streamscore.backends import open_configured_backend

    database = open_configured_backend(settings) if in_database or backend else None
    in_database = database is not None and (in_database or "train" in database.implements)
    if database is not None and in_database:
        database.require("train")
        with database:  # version 0: the backend trains the next version (installed max + 1)
            artifact = database.train_model(
                config if version is not None else dataclasses.replace(config, version=0), settings.mnist_dir)
    else:
        train_split, test_split = load_split("train", settings.mnist_dir), load_split("test", settings.mnist_dir)
        with Progress(console=err_console) as progress:
            task = progress.add_task("training", total=steps)
            artifact = run_training(config, train_split, test_split,
                                    progress=lambda done, _total: progress.update(task, completed=done))
    artifact.save(out)
    console.print(f"wrote {out}: {artifact.name} v{artifact.version}, test accuracy "
                  f"{artifact.manifest['metrics'].get('test_accuracy')}")
    if publish or in_database:  # a model trained in the database goes to every consumer
        from streamscore.producers.models import publish_model
        from streamscore.shared.kafka import ensure_topics

        ensure_topics(settings)
        publish_model(settings, artifact)
        console.print(f"published v{artifact.version} to {settings.models_topic}")


@db_app.command("init")
def db_init(backend: BackendOpt = None) -> None:
    """Create the schema (tables, in-database code) if missing; safe to run twice."""
    from streamscore.backends import open_configured_backend

    settings = settings_from(backend=backend)
    with open_configured_backend(settings) as database:
        database.init_schema()
        console.print(f"schema ready in {database.url.masked()}")


@app.command()
def bench(
    backend: BackendOpt = None,
    images: Annotated[int, typer.Option(help="images per measurement")] = 10_000,
    bootstrap: Annotated[str | None, typer.Option(
        "--bootstrap", help="use this Kafka instead of a fresh embedded broker")] = None,
    skip_pipeline: Annotated[bool, typer.Option(help="only the in-database scoring figures")] = False,
    processes: Annotated[bool, typer.Option(
        help="also run consumer processes: 1 vs 2 (PostgreSQL) and recovery after SIGKILL")] = True,
    out: Annotated[Path, typer.Option(help="folder for bench.json and scratch databases")] = Path("out/bench"),
) -> None:
    """Measure pass-through vs pipeline throughput and in-DB scoring vs numpy."""
    from streamscore.bench.runner import run_bench

    settings = settings_from(backend=backend)
    run_bench(settings, images=images, bootstrap=bootstrap, skip_pipeline=skip_pipeline, out=out, console=console,
              processes=processes and not skip_pipeline)


def main() -> None:
    try:
        app()
    except StreamscoreError as exc:
        err_console.print(f"[red]error[/] ({exc.reason}): {exc.message}")
        sys.exit(2)


if __name__ == "__main__":
    main()
