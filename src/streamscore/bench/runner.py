"""`streamscore bench`: one run, several measurements, one table and bench.json.

1. in-database scoring vs the numpy reference (images/s, best of 3 on the test set), and the
   bundled dense net vs the CNN in the database (bench/architectures.py);
2. raw Kafka pass-through vs the full pipeline (consume → DB → score → predictions);
3. latency (produced → scored) at half the pipeline's maximum rate;
4. model lifecycle: throughput with one shadow ÷ without, and 100 champion swaps in a row at full
   rate (resident memory before/after, swap gap: :mod:`streamscore.bench.swaps`).

The pipeline runs against a fresh embedded broker unless --bootstrap is given.
Each pipeline measurement starts its clock at the first batch, so group-join
time is left out of both figures alike.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from streamscore.backends import ModelRef, open_backend, open_configured_backend
from streamscore.backends.base import ScoredBatch
from streamscore.bench.arrivals import PredictionArrivals
from streamscore.bench.passthrough import passthrough_rate
from streamscore.bench.swaps import SWAPS, swap_figures, swap_rows
from streamscore.broker import EmbeddedBroker
from streamscore.consumers.scorer import Scorer
from streamscore.errors import BenchError
from streamscore.logs import logged_events
from streamscore.models import bundled_model
from streamscore.producers.images import produce_images
from streamscore.producers.models import publish_model
from streamscore.shared.config import Settings
from streamscore.shared.kafka import ensure_topics
from streamscore.shared.mnist import MnistSplit, load_split

#: Canali's 2016 Oracle scorer: 10,000 images in about 2 minutes, one UTL_NLA call per image
ORACLE_2016_IMAGES_PER_S = 81.0
#: seconds of paced stream the latency figure is measured over (the first second is warm-up)
LATENCY_RUN_S = 8.0
#: images per scale-out run (ids are generated, so more than the 10,000 test images)
SCALEOUT_IMAGES = 40_000


def best_rate(action: Any, count: int, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - started)
    return count / best


def scoring_rates(settings: Settings, backend_url: str, split: MnistSplit) -> dict[str, float]:
    model = bundled_model(2)
    numpy_rate = best_rate(lambda: model.forward(split.images), len(split))
    with open_configured_backend(settings, backend_url) as backend:
        backend.init_schema()
        backend.install_model(model)
        ref = ModelRef(model.name, model.version)
        backend.score(split.images[:100], ref)  # warm caches (weights, UDF, plans)
        db_rate = best_rate(lambda: backend.score(split.images, ref), len(split))
    return {"numpy_images_per_s": numpy_rate, "in_db_images_per_s": db_rate, "ratio": db_rate / numpy_rate}


@contextlib.contextmanager
def kafka_for(settings: Settings, bootstrap: str | None, out: Path) -> Iterator[Settings]:
    if bootstrap:
        yield settings.with_overrides(kafka_bootstrap=bootstrap)
        return
    with EmbeddedBroker(log_path=out / "broker.log") as broker:
        yield settings.with_overrides(kafka_bootstrap=broker.bootstrap)


def pipeline_rate(settings: Settings, split: MnistSplit, images: int) -> dict[str, Any]:
    """Run a Scorer over pre-produced images: images/s and the time per phase of a batch."""
    stop = threading.Event()
    backend = open_configured_backend(settings)
    stamps: list[tuple[float, int]] = []

    def on_batch(batch: ScoredBatch) -> None:
        if not batch.served:
            return  # a shadow's scores of the same images
        stamps.append((time.monotonic(), len(batch.image_ids)))
        if sum(n for _, n in stamps) >= images:
            stop.set()

    scorer = Scorer(settings, backend, stop=stop, on_batch=on_batch)
    produce_images(settings, split, limit=images)
    thread = threading.Thread(target=scorer.run, daemon=True)
    thread.start()
    thread.join(300)
    stop.set()
    result: dict[str, Any] = {"breakdown_ms": scorer.breakdown_ms(), "batches": scorer.timings.batches}
    if len(stamps) > 1:
        elapsed = stamps[-1][0] - stamps[0][0]
        result["images_per_s"] = (sum(n for _, n in stamps) - stamps[0][1]) / elapsed
    return result


def latency_stream(settings: Settings, rate: float) -> tuple[str, int]:
    """(split, images) of the paced run: about LATENCY_RUN_S seconds of stream with every image id
    once (a repeated id is a replay, which takes another path in the database): the 60,000 training
    images when the MNIST folder has them, else the 10,000 test images."""
    wanted = max(1000, int(rate * LATENCY_RUN_S))
    if (settings.mnist_dir / "train-images-idx3-ubyte.gz").exists():
        return "train", min(wanted, 60_000)
    return "test", min(wanted, 10_000)


def paced_latency(settings: Settings, rate: float, workdir: Path) -> dict[str, Any]:
    """Latency as users run the pipeline: `streamscore consume` and `streamscore produce --rate` as
    processes of their own, this one only stamping the predictions' arrival on the evaluation topic."""
    split, images = latency_stream(settings, rate)
    log_path = workdir / f"latency-consumer-{uuid.uuid4().hex[:6]}.log"
    with open(log_path, "wb") as log_file:
        consumer = subprocess.Popen([sys.executable, "-m", "streamscore.cli", "--log-json", "consume"],
                                    env=cli_environment(settings), stdout=subprocess.DEVNULL, stderr=log_file)
    try:
        deadline = time.monotonic() + 60
        while not logged_events(log_path, "assigned"):
            if consumer.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"the consumer of the latency run did not join its group; see {log_path}")
            time.sleep(0.1)
        with PredictionArrivals(settings) as arrivals:
            produce_in_another_process(settings, images, rate, split)
            arrivals.wait_for(images, 60)
        return arrivals.percentiles() | {"images": images, "split": split}
    finally:
        consumer.send_signal(signal.SIGTERM)
        try:
            consumer.wait(30)
        except subprocess.TimeoutExpired:
            consumer.kill()


def cli_environment(settings: Settings) -> dict[str, str]:
    """The environment that points a `streamscore` command at this measurement's topics and database."""
    return os.environ | {
        "STREAMSCORE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap, "STREAMSCORE_IMAGES_TOPIC": settings.images_topic,
        "STREAMSCORE_PREDICTIONS_TOPIC": settings.predictions_topic, "STREAMSCORE_DLQ_TOPIC": settings.dlq_topic,
        "STREAMSCORE_MODELS_TOPIC": settings.models_topic, "STREAMSCORE_GROUP": settings.group,
        "STREAMSCORE_BACKEND": settings.backend_url, "STREAMSCORE_PARTITIONS": str(settings.partitions),
        "STREAMSCORE_SESSION_TIMEOUT_MS": str(settings.session_timeout_ms),
        "STREAMSCORE_BATCH_SIZE": str(settings.batch_size), "STREAMSCORE_LINGER_MS": str(settings.linger_ms),
        "STREAMSCORE_DUCKDB_SCORER": settings.duckdb_scorer, "STREAMSCORE_METRICS_PORT": "0",
    }


def produce_in_another_process(settings: Settings, images: int, rate: float, split: str = "test") -> None:
    """`streamscore produce --rate` as a user runs it, in a process of its own."""
    command = [sys.executable, "-m", "streamscore.cli", "produce", "--split", split, "--limit", str(images),
               "--rate", f"{rate:.1f}"]
    subprocess.run(command, env=cli_environment(settings), check=True, capture_output=True, timeout=600)


def fresh_settings(settings: Settings, backend_url: str, tag: str) -> Settings:
    """Topics and group unique to one measurement, so measurements do not see each other's data."""
    suffix = f"{tag}-{uuid.uuid4().hex[:6]}"
    return settings.with_overrides(
        images_topic=f"bench.images.{suffix}", predictions_topic=f"bench.predictions.{suffix}",
        dlq_topic=f"bench.dlq.{suffix}", models_topic=f"bench.models.{suffix}",
        group=f"bench-{suffix}", backend=backend_url,
    )


#: backend URLs of the scratch schemas made for one bench run, dropped at its end
SCRATCH_SCHEMAS: list[str] = []


def scratch_backend_url(settings: Settings, out: Path, tag: str) -> str:
    """A database of its own per measurement: a fresh DuckDB file, or a fresh schema where the
    engine can drop one ("drop-schema" capability and a ``schema`` URL option)."""
    url = settings.backend_url
    backend = open_backend(url)
    if backend.name == "duckdb":
        path = (out / f"bench-{tag}.duckdb").resolve()
        path.unlink(missing_ok=True)
        options = url.partition("?")[2]  # e.g. memory_limit: the measurement runs as configured
        return f"duckdb:///{path}" + (f"?{options}" if options else "")
    if "drop-schema" in backend.implements and "schema" in backend.url_options:
        scratch = f"{url}{'&' if '?' in url else '?'}schema=ssbench_{tag}_{uuid.uuid4().hex[:6]}"
        SCRATCH_SCHEMAS.append(scratch)
        return scratch
    return url


def drop_scratch_schemas() -> None:
    while SCRATCH_SCHEMAS:
        with open_backend(SCRATCH_SCHEMAS.pop()) as backend:
            backend.drop_schema()


def run_pipeline(settings: Settings, out: Path, images: int, split: MnistSplit, tag: str,
                 rate: float | None = None) -> dict[str, Any]:
    """Images/s over pre-produced images; with ``rate``, the latency of a paced stream instead."""
    run = fresh_settings(settings, scratch_backend_url(settings, out, tag), tag)
    ensure_topics(run)
    publish_model(run, bundled_model(2))
    if rate is None:
        return pipeline_rate(run, split, images)
    return paced_latency(run, rate, out)


def run_bench(settings: Settings, *, images: int, bootstrap: str | None, skip_pipeline: bool, out: Path,
              console: Console, processes: bool = True) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    split = load_split("test")
    images = min(images, len(split))
    results: dict[str, Any] = {"backend": open_backend(settings.backend_url).url.masked(), "images": images}
    with console.status("in-database scoring vs numpy…"):
        results["scoring"] = scoring_rates(settings, scratch_backend_url(settings, out, "scoring"), split)
    with console.status("in-database dense net vs CNN…"):
        from streamscore.bench.architectures import architecture_rates

        results["architectures"] = architecture_rates(settings, scratch_backend_url(settings, out, "arch"), split)
    with console.status("engine figures (PostgreSQL: ingest COPY vs executemany)…"), \
            open_configured_backend(settings) as backend:
        results["engine"] = backend.engine_benchmarks(images)
    if not skip_pipeline:
        with kafka_for(settings, bootstrap, out) as kafka:
            with console.status("raw Kafka pass-through…"):
                source = fresh_settings(kafka, kafka.backend_url, "raw")
                ensure_topics(source)
                produce_images(source, split, limit=images)
                raw = passthrough_rate(source, source.images_topic, images)
            with console.status("full pipeline…"):
                pipeline = run_pipeline(kafka, out, images, split, "pipeline")
            half = pipeline.get("images_per_s", 0) / 2
            with console.status(f"latency at half the max rate ({half:,.0f} images/s)…"):
                paced = run_pipeline(kafka, out, images, split, "latency", half)
            with console.status(f"{SWAPS} model swaps at full rate, then one shadow's cost…"):
                results |= swap_figures(lambda tag: fresh_settings(kafka, scratch_backend_url(kafka, out, tag), tag),
                                        split, images)
        results["passthrough_images_per_s"] = raw
        results["pipeline"] = pipeline
        results["pipeline_ratio"] = pipeline.get("images_per_s", 0) / raw if raw else None
        results["latency_at_half_rate"] = paced | {"rate": half}
        results["breakdown_ms"] = pipeline.get("breakdown_ms", {})
    if processes:
        from streamscore.bench.scaleout import recovery_benchmark, scaleout_benchmark

        backend_class = type(open_backend(settings.backend_url))
        if backend_class.concurrent_writers:
            with console.status("1 vs 2 consumer processes…"):
                # long enough that group joins and the first batches do not dominate the figure
                results["scaleout"] = scaleout_benchmark(
                    settings, scratch_backend_url(settings, out, "scaleout"), max(images, SCALEOUT_IMAGES),
                    bootstrap=bootstrap)
                results["scaleout_ratio"] = results["scaleout"].get("speedup_2_vs_1")
        with console.status("recovery after SIGKILL…"):
            results["recovery"] = recovery_benchmark(
                settings, scratch_backend_url(settings, out, "recovery"), bootstrap=bootstrap)
    drop_scratch_schemas()
    (out / "bench.json").write_text(json.dumps(results, indent=2, default=float))
    console.print(bench_table(results))
    return results


def bench_table(results: dict[str, Any]) -> Table:
    table = Table(title=f"streamscore bench — {results['backend']}, {results['images']:,} images")
    table.add_column("measure")
    table.add_column("value", justify="right")
    scoring = results["scoring"]
    table.add_row("numpy reference scoring", f"{scoring['numpy_images_per_s']:,.0f} images/s")
    table.add_row("in-database scoring", f"{scoring['in_db_images_per_s']:,.0f} images/s")
    table.add_row("in-database ÷ numpy", f"{scoring['ratio']:.2f}×")
    table.add_row("in-database ÷ the 2016 PL/SQL scorer (≈81 images/s)",
                  f"{scoring['in_db_images_per_s'] / ORACLE_2016_IMAGES_PER_S:,.0f}×")
    from streamscore.bench.architectures import architecture_rows

    for name, value in architecture_rows(results.get("architectures", {})):
        table.add_row(name, value)
    ingest = results.get("engine")
    if ingest and "copy_binary_rows_per_s" in ingest:
        table.add_row("ingest: COPY (binary, staging)", f"{ingest['copy_binary_rows_per_s']:,.0f} rows/s")
        table.add_row("ingest: executemany", f"{ingest['executemany_rows_per_s']:,.0f} rows/s")
        table.add_row("pure-SQL scoring (not shipped)",
                      f"{ingest['sql_score_images_per_s']:,.0f} images/s ({ingest['sql_slowdown']:.0f}× slower)")
    if "pipeline" in results:
        table.add_row("raw Kafka pass-through", f"{results['passthrough_images_per_s']:,.0f} images/s")
        table.add_row("full pipeline", f"{results['pipeline'].get('images_per_s', 0):,.0f} images/s")
        ratio = results.get("pipeline_ratio")
        table.add_row("pipeline ÷ pass-through", f"{ratio:.2f}×" if ratio else "n/a")
        paced = results["latency_at_half_rate"]
        table.add_row(f"latency p50 / p99 at {paced['rate']:,.0f} images/s (produced → on the evaluation topic)",
                      f"{paced.get('p50_ms', float('nan')):,.0f} / {paced.get('p99_ms', float('nan')):,.0f} ms")
        breakdown = results.get("breakdown_ms") or {}
        if breakdown:
            per_batch = results["images"] / max(1, results["pipeline"].get("batches", 1))
            table.add_row(f"one batch (≈{per_batch:,.0f} images), ms by phase",
                          ", ".join(f"{name} {ms:.1f}" for name, ms in breakdown.items()))
    for row in swap_rows(results):
        table.add_row(*row)
    scaleout = results.get("scaleout")
    if scaleout and "speedup_2_vs_1" in scaleout:
        runs = scaleout["runs"]
        table.add_row("1 consumer process", f"{runs['1']['images_per_s']:,.0f} images/s")
        table.add_row("2 consumer processes", f"{runs['2']['images_per_s']:,.0f} images/s "
                      f"({scaleout['speedup_2_vs_1']:.2f}×)")
    recovery = results.get("recovery")
    if recovery:
        table.add_row("recovery after SIGKILL (restart → first new prediction)",
                      f"{recovery.get('restart_to_first_prediction_s', float('nan')):.1f} s")
    return table


