"""PostgreSQL ingest and scoring figures for ``streamscore bench`` (docs/postgres.md), reached
through ``PostgresBackend.engine_benchmarks``.

:func:`ingest_benchmark` works in a scratch schema (``ssbench_<random>``) that it drops
afterwards, on the MNIST test images, and returns rows (or images) per second for:

* ``copy_binary_rows_per_s`` — COPY (FORMAT BINARY) into the staging temp table, then
  INSERT … SELECT … ON CONFLICT DO NOTHING into images (the backend's path for batches holding stored ids;
  new batches are COPYed straight into images);
* ``executemany_rows_per_s`` — the same rows with ``executemany`` of an INSERT … ON CONFLICT;
* ``write_batch_images_per_s`` — the backend's whole ``write_batch`` (ingest, PL/Python
  scoring, predictions, offsets, commit) in batches of ``batch_size``;
* ``plpython_score_images_per_s`` — ``score()`` of all images in one call (nothing stored);
* ``sql_score_images_per_s`` — the pure-SQL forward pass (``sql/postgres/bench.sql``)
  on the first ``sql_images`` images, and ``sql_slowdown`` = PL/Python rate / SQL rate.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import numpy as np
import numpy.typing as npt
from psycopg import sql

from streamscore.backends.activations_sql import activation_sql
from streamscore.backends.base import ImageBatch, ModelRef, SourceOffset
from streamscore.backends.postgres import batches
from streamscore.backends.postgres import statements as q
from streamscore.backends.postgres.backend import PostgresBackend
from streamscore.backends.url import BackendURL
from streamscore.model.artifact import ModelArtifact
from streamscore.models import bundled_model
from streamscore.shared.mnist import load_split

TOPIC = "bench.images"


def _batch(ids: list[str], pixels: npt.NDArray[np.uint8], labels: npt.NDArray[Any], start: int) -> ImageBatch:
    n = len(ids)
    sources = [SourceOffset(TOPIC, 0, start + i) for i in range(n)]
    return ImageBatch(
        f"bench-{start}", ids, pixels, labels.astype(np.int16), np.zeros(n, np.int64), sources,
        {(TOPIC, 0): start + n},
    )


def _rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def score_with_sql(backend: PostgresBackend, image_ids: list[str], model: ModelArtifact) -> dict[str, list[float]]:
    """Probabilities per image id from the pure-SQL forward pass (inside a rolled-back transaction)."""
    params: dict[str, Any] = {"name": model.name, "version": model.version, "input_scale": model.input_scale}
    conn = backend._connection()
    with conn.transaction(force_rollback=True), conn.cursor() as cursor:
        cursor.execute(q.statement("bench_todo"), {"ids": image_ids})
        for name in ("bench_weights", "bench_biases", "bench_pixels"):
            cursor.execute(q.statement(name), params)
        activate = q.statement("bench_activate")
        for layer, activation in enumerate(model.activations):
            cursor.execute(q.statement("bench_layer"), params | {"layer": layer})
            cursor.execute(q.statement("bench_drop_x"))
            cursor.execute(sql.SQL(activate).format(activation=sql.SQL(activation_sql("postgres", activation))))
            cursor.execute(q.statement("bench_drop_z"))
        cursor.execute(q.statement("bench_collect"))
        return {str(image_id): list(values) for image_id, values in cursor.fetchall()}


def ingest_benchmark(
    url: BackendURL, images: int = 10_000, *, batch_size: int = 500, sql_images: int = 200
) -> dict[str, float]:
    """Rows/s of the ingest paths and images/s of the scorers, in a scratch schema (dropped after)."""
    test = load_split("test")
    images = max(1, min(images, len(test)))
    ids = [test.image_id(i) for i in range(images)]
    pixels, labels = test.images[:images], test.labels[:images]
    model = bundled_model(2)
    ref = ModelRef(model.name, model.version)
    schema = f"ssbench_{secrets.token_hex(4)}"
    backend = PostgresBackend(url.with_options({"schema": schema}))
    figures: dict[str, float] = {"images": float(images)}
    backend.connect()
    try:
        backend.init_schema()
        backend.install_model(model)
        conn = backend._connection()
        insert_images = q.statement("insert_images")

        # COPY binary → staging → INSERT … ON CONFLICT, as write_batch does it
        started = time.perf_counter()
        with conn.transaction(), conn.cursor() as cursor:
            batches.copy_staging(cursor, _batch(ids, pixels, labels, 0))
            cursor.execute(insert_images, {"batch_id": "copy"})
        figures["copy_binary_rows_per_s"] = _rate(images, time.perf_counter() - started)

        conn.execute(q.statement("bench_truncate_images"))
        rows = list(q.staging_rows(_batch(ids, pixels, labels, 0)))
        started = time.perf_counter()
        with conn.transaction(), conn.cursor() as cursor:
            cursor.executemany(q.statement("bench_insert_one"), rows)
        figures["executemany_rows_per_s"] = _rate(images, time.perf_counter() - started)

        conn.execute(q.statement("bench_truncate_images"))
        started = time.perf_counter()
        for start in range(0, images, batch_size):
            stop = min(start + batch_size, images)
            backend.write_batch(_batch(ids[start:stop], pixels[start:stop], labels[start:stop], start), ref, "bench")
        figures["write_batch_images_per_s"] = _rate(images, time.perf_counter() - started)
        figures["batch_size"] = float(batch_size)

        backend.score(pixels[:10], ref)  # warm the session's weight cache
        started = time.perf_counter()
        probabilities = backend.score(pixels, ref)
        figures["plpython_score_images_per_s"] = _rate(images, time.perf_counter() - started)
        figures["plpython_max_abs_diff"] = float(np.abs(probabilities - model.forward(pixels)).max())

        subset = ids[: max(1, min(sql_images, images))]
        started = time.perf_counter()
        by_id = score_with_sql(backend, subset, model)
        figures["sql_score_images_per_s"] = _rate(len(subset), time.perf_counter() - started)
        figures["sql_images"] = float(len(subset))
        sql_probabilities = np.asarray([by_id[i] for i in subset], np.float32)
        figures["sql_max_abs_diff"] = float(np.abs(sql_probabilities - model.forward(pixels[: len(subset)])).max())
        figures["sql_slowdown"] = figures["plpython_score_images_per_s"] / figures["sql_score_images_per_s"]
    finally:
        try:
            backend.drop_schema()
        finally:
            backend.close()
    return figures
