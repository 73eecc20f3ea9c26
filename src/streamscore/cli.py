"""`streamscore …` — thin typer commands over the library; settings built once here.

Every option also reads its STREAMSCORE_* variable (see streamscore.shared.config). Errors
become one line and exit code 2 at the boundary (streamscore.cli_boundary).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from streamscore.cli_boundary import run_command_line
from streamscore.cli_dashboard import dashboard as dashboard_command
from streamscore.cli_db import db_app
from streamscore.cli_demo import demo as demo_command
from streamscore.cli_keys import SignKey, keys_app
from streamscore.cli_model import export_onnx
from streamscore.cli_models import models_app
from streamscore.cli_options import (
    BackendOpt,
    Bootstrap,
    Group,
    LogJson,
    Verbose,
    bootstrap_given,
    consumer_start_lines,
    global_options,
    log_json_requested,
    positive,
    reachable,
    settings_from,
    stop_on_signals,
    verbose_requested,
)
from streamscore.cli_train import train

app = typer.Typer(
    help="Stream MNIST images through Kafka, score them inside a database, hot-swap models over Kafka.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command("demo")(demo_command)
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
app.add_typer(models_app, name="models")
app.command("export-onnx")(export_onnx)
app.command("dashboard")(dashboard_command)
app.command()(train)
app.callback()(global_options)  # --bootstrap, --backend, --log-json, --verbose before the command name
console = Console()
err_console = Console(stderr=True)
log = logging.getLogger("streamscore")


@app.command()
def broker(
    port: Annotated[int, typer.Option(min=0, max=65535, help="port on 127.0.0.1 (0 = a free one)")] = 9092,
) -> None:
    """Run the embedded Kafka-compatible broker (Tansu, memory only) in the foreground."""
    from streamscore.broker import EmbeddedBroker

    settings_from()
    stop = stop_on_signals()
    with EmbeddedBroker(port=port or None) as running:
        console.print(f"embedded broker listening; bootstrap: [bold]{running.bootstrap}[/]")
        console.print(f"export STREAMSCORE_KAFKA_BOOTSTRAP={running.bootstrap}   (Ctrl-C stops it)")
        console.print("memory storage: stopping or restarting this broker loses every topic, message, "
                      "model and committed offset (publish the models again after a restart)")
        while not stop.wait(0.5):
            pass


@app.command()
def produce(
    split: Annotated[str, typer.Option(help="train or test")] = "test",
    limit: Annotated[int | None, typer.Option(min=0, help="stop after this many images")] = None,
    rate: Annotated[float | None, typer.Option(
        callback=positive, help="images/s (token bucket, > 0); default unlimited")] = None,
    loop: Annotated[bool, typer.Option(help="repeat the split until stopped or --limit")] = False,
    bootstrap: Bootstrap = None,
    log_json: LogJson = False,
) -> None:
    """Stream MNIST images to the images topic (idempotent producer; rides out broker outages).

    Ctrl-C stops sending and waits up to 10 s for what is in flight (again: at once); the
    sent/delivered/failed/not delivered summary is printed in every case.
    """
    import threading

    from rich.progress import Progress

    from streamscore.errors import KafkaError
    from streamscore.producers.images import ProduceReport, produce_images
    from streamscore.shared.kafka import ensure_topics
    from streamscore.shared.mnist import load_for

    if split not in ("train", "test"):
        raise typer.BadParameter("--split must be train or test")
    settings = settings_from(log_json, kafka_bootstrap=bootstrap)
    data = load_for(split, settings.mnist_dir)  # type: ignore[arg-type]
    ensure_topics(settings)
    total = limit if loop else min(limit or len(data), len(data))
    give_up = threading.Event()
    stop = stop_on_signals(force=give_up)
    report = ProduceReport()
    try:
        with Progress(console=err_console) as progress:
            task = progress.add_task(f"→ {settings.images_topic}", total=total)
            produce_images(settings, data, limit=limit, rate=rate, loop=loop, stop=stop, give_up=give_up,
                           report=report, progress=lambda n: progress.advance(task, n))
    finally:
        console.print(report.summary())
        for error in report.errors:
            err_console.print(f"delivery error: {error}", markup=False)
    if report.failed or report.not_delivered:
        raise KafkaError(f"{report.failed + report.not_delivered:,} image(s) not delivered ({report.failed:,} "
                         f"refused by Kafka, {report.not_delivered:,} in flight when stopped)", reason="not-delivered")


@app.command()
def consume(
    backend: BackendOpt = None,
    bootstrap: Bootstrap = None,
    group: Group = None,
    batch_size: Annotated[int | None, typer.Option(
        min=1, max=100_000, help="images per database batch (default 2000)")] = None,
    linger_ms: Annotated[int | None, typer.Option(min=0, help="longest wait for a batch to fill (default 50)")] = None,
    log_json: LogJson = False,
    verbose: Verbose = False,
    workers: Annotated[int, typer.Option(
        min=1, help="consumer processes of the group on this machine (PostgreSQL; DuckDB takes one)")] = 1,
    metrics_port: Annotated[int | None, typer.Option(
        min=0, max=65535,
        help="Prometheus /metrics and /healthz port, 0 = off; worker i uses port+i [STREAMSCORE_METRICS_PORT]")] = None,
    metrics_host: Annotated[str, typer.Option(help="address the metrics endpoint listens on")] = "0.0.0.0",
) -> None:
    """Consume images, store and score them in the database, publish predictions."""
    from streamscore.backends import open_configured_backend
    from streamscore.consumers.faults import fault_hook_from_env
    from streamscore.consumers.scorer import Scorer
    from streamscore.shared.kafka import ensure_topics

    settings = settings_from(log_json, verbose, backend=backend, kafka_bootstrap=bootstrap, group=group,
                             batch_size=batch_size, linger_ms=linger_ms, metrics_port=metrics_port)
    from streamscore.consumers.signature_check import configured_public_key

    configured_public_key(settings)  # an unusable model key stops here, in one line, before Kafka is asked
    database = open_configured_backend(settings)  # an unknown scheme or option too (nothing is connected yet)
    for line in consumer_start_lines(settings, backend):
        err_console.print(line, markup=False, soft_wrap=True)
    ensure_topics(settings)
    if workers != 1:
        from streamscore.consumers.workers import run_workers

        extra = ["--metrics-host", metrics_host] + (["--verbose"] if verbose or verbose_requested() else [])
        raise typer.Exit(run_workers(settings, workers, extra))
    log.info("consuming %s as group %s into %s", settings.images_topic, settings.group, database.url.masked())
    stats = Scorer(settings, database, stop=stop_on_signals(), metrics_host=metrics_host,
                   fault=fault_hook_from_env()).run()
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
    version: Annotated[int | None, typer.Option(min=1, help="publish under this version instead")] = None,
    role: Annotated[str, typer.Option(
        help="champion (served alone), shadow (scored, never served) or ensemble (served with the champion "
             "as the mean of the members' probabilities)")] = "champion",
    force: Annotated[bool, typer.Option(
        help="publish even if not newer than the newest on the topic, as a plain record (consumers ignore it; "
             "the newest is appended again after it)")] = False,
    sign_key: SignKey = None,
    bootstrap: Bootstrap = None,
) -> None:
    """Publish a model artifact to the compacted models topic under a role (consumers switch to it
    between two batches); `streamscore models …` promotes, withdraws and rolls back.

    A version not newer than the newest on the topic is refused (consumers would ignore it,
    and compaction would keep it as the model's last record) unless --force.
    """
    from streamscore.model.artifact import load_artifact
    from streamscore.model.keys import fingerprint
    from streamscore.model.lifecycle import PUBLISH_ROLES
    from streamscore.producers.lifecycle import publish_with_role
    from streamscore.producers.models import publish_new_version, signing_key
    from streamscore.shared.kafka import ensure_topics

    if role not in PUBLISH_ROLES:
        raise typer.BadParameter(f"--role must be one of {', '.join(PUBLISH_ROLES)}, not {role!r}")
    settings = settings_from(kafka_bootstrap=bootstrap)
    key = signing_key(settings, sign_key)  # a bad key file fails before anything is sent
    artifact = load_artifact(path)
    if version is not None:
        artifact = artifact.with_version(version)
    ensure_topics(settings)
    signed = f", signed by key {fingerprint(key.public_key())}" if key is not None else ", unsigned"
    if not force:
        state = publish_with_role(settings, artifact, role, sign_key=key)
        console.print(f"published {artifact.name} v{artifact.version} as {role} to {settings.models_topic}{signed}; "
                      f"in force: {state.serving_set()}")
        return
    if role != "champion":
        raise typer.BadParameter("--force publishes a plain (champion) record; it takes no --role")
    outcome = publish_new_version(settings, artifact, force=force, sign_key=key)
    console.print(f"published {artifact.name} v{artifact.version} to {settings.models_topic} "
                  f"(sha256 {outcome.digest[:12]}…{signed})")
    if outcome.reappended is not None:
        console.print(f"forced: v{artifact.version} is not newer than v{outcome.reappended}; consumers ignore it, and "
                      f"the model's current record was appended again after it, so compaction keeps that one last")


@app.command()
def evaluate(
    follow: Annotated[bool, typer.Option(help="keep reading live until Ctrl-C")] = False,
    expect: Annotated[int | None, typer.Option(min=0, help="stop once this many distinct images are seen")] = None,
    idle: Annotated[float, typer.Option(
        callback=positive, help="stop after this many seconds without new predictions")] = 3.0,
    out: Annotated[Path, typer.Option(
        help="folder for report.json, confusion.png and misclassified.png")] = Path("out/evaluate"),
    auto_rollback: Annotated[bool, typer.Option(
        help="with --follow: roll the champion back when its windowed accuracy falls more than --margin below "
             "the previous champion's")] = False,
    window: Annotated[int, typer.Option(min=1, help="labelled served predictions per version in the window")] = 200,
    margin: Annotated[float, typer.Option(min=0.0, max=1.0, help="accuracy drop that triggers a rollback")] = 0.05,
    bootstrap: Bootstrap = None,
    from_backend: Annotated[str | None, typer.Option(
        "--from-backend", metavar="URL",
        help="evaluate inside this database (sql/<engine>/evaluation.sql) instead of reading the topic")] = None,
) -> None:
    """Accuracy per (backend, model version), confusion matrix, latency and the misclassified digits, from
    the evaluation topic, or with --from-backend URL from the database's own SQL."""
    if from_backend is not None:
        if follow or expect is not None:
            raise typer.BadParameter("--follow and --expect read the topic; --from-backend reads the database once",
                                     param_hint="--from-backend")
        from streamscore.ops.backend_evaluation import evaluate_backend, print_backend_report

        settings = settings_from()
        print_backend_report(evaluate_backend(settings, from_backend, out), from_backend, console)
        return
    from streamscore.consumers.auto_rollback import AutoRollback
    from streamscore.ops.evaluation_view import evaluate_and_report
    from streamscore.producers.lifecycle import rollback_action

    if auto_rollback and not follow:
        raise typer.BadParameter("--auto-rollback watches live predictions: add --follow")
    settings = reachable(settings_from(kafka_bootstrap=bootstrap))
    judge = AutoRollback(window, margin, rollback_action(settings)) if auto_rollback else None
    evaluate_and_report(settings, stop_on_signals(), follow=follow, expect=expect, idle=idle, out=out,
                        console=console, err_console=err_console, auto_rollback=judge)


@app.command()
def bench(
    backend: BackendOpt = None,
    images: Annotated[int, typer.Option(min=1, help="images per measurement")] = 10_000,
    bootstrap: Bootstrap = None,
    embedded_broker: Annotated[bool | None, typer.Option(
        "--embedded-broker/--no-embedded-broker",
        help="measure on a fresh embedded broker (the default unless --bootstrap is given); "
             "--no-embedded-broker uses STREAMSCORE_KAFKA_BOOTSTRAP")] = None,
    skip_pipeline: Annotated[bool, typer.Option(help="only the in-database scoring figures")] = False,
    processes: Annotated[bool, typer.Option(
        help="also run consumer processes: 1 vs 2 (PostgreSQL) and recovery after SIGKILL")] = True,
    out: Annotated[Path, typer.Option(help="folder for bench.json and scratch databases")] = Path("out/bench"),
) -> None:
    """Measure pass-through vs pipeline throughput and in-DB scoring vs numpy."""
    from streamscore.bench.runner import run_bench

    settings = settings_from(backend=backend, kafka_bootstrap=bootstrap)
    if embedded_broker is None:
        embedded_broker = not bootstrap_given(bootstrap)
    run_bench(settings, images=images, bootstrap=None if embedded_broker else settings.kafka_bootstrap,
              skip_pipeline=skip_pipeline, out=out, console=console, processes=processes and not skip_pipeline)


def main() -> None:
    run_command_line(app, verbose_requested, log_json_requested)


if __name__ == "__main__":
    main()
