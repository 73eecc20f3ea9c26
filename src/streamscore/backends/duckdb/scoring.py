"""The two in-DuckDB forward passes, chosen with ``scorer=udf|sql``.

* ``udf`` — a vectorized Arrow UDF registered in the connection: DuckDB hands it
  whole vectors of pixels and it runs the dense stack with numpy on weights read
  from the ``model_layers`` table (cached per version).
* ``sql`` — the forward pass as SQL over list functions, one statement per layer
  (``sql_input``, ``sql_layer``, ``sql_activate`` in ``sql/duckdb/scoring.sql``); no Python
  runs inside the query.

Both read the images from a table and leave ``ss_scores(image_id, probabilities)``.
Measured with ``streamscore bench`` (README): udf is the default because it is
an order of magnitude faster.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from streamscore.backends.activations_sql import activation_sql
from streamscore.backends.base import ImageBatch, ModelRef
from streamscore.backends.sqlfiles import sql
from streamscore.model.artifact import ModelArtifact

UDF_NAME = "streamscore_forward"


ModelLookup = Callable[[ModelRef], ModelArtifact]


class PinnedModels:
    """The weights of each scoring statement running, by (name, version): what the UDF reads.

    The UDF is a function of the database instance, not of one connection, so a second connection
    (Backend.session: a model installed ahead, from another thread) runs the same UDF; each caller pins
    the weights it loaded for the duration of its statement, and the UDF never queries a connection.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: dict[tuple[str, int], tuple[ModelArtifact, int]] = {}

    @contextmanager
    def pinned(self, ref: ModelRef, model: ModelArtifact) -> Iterator[None]:
        with self._lock:
            _, count = self._models.get(ref.key, (model, 0))
            self._models[ref.key] = (model, count + 1)
        try:
            yield
        finally:
            with self._lock:
                _, count = self._models[ref.key]
                if count == 1:
                    del self._models[ref.key]
                else:
                    self._models[ref.key] = (model, count - 1)

    def __call__(self, ref: ModelRef) -> ModelArtifact:
        entry = self._models.get(ref.key)
        if entry is None:
            raise LookupError(f"{UDF_NAME}: model {ref.name} v{ref.version} is not loaded for this statement")
        return entry[0]


def register_udf(con: duckdb.DuckDBPyConnection, lookup: ModelLookup) -> None:
    """Register ``streamscore_forward(raw, name, version) -> FLOAT[10]`` on the connection.

    ``raw`` is the image's 784 bytes as a BLOB (the wire value): DuckDB hands it over as one
    Arrow buffer, so the UDF reads the pixels without a per-element conversion.
    """

    def forward(raw: Any, name: Any, version: Any) -> pa.Array:
        arrays = [raw, name, version]
        blobs, names, versions = (a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a for a in arrays)
        if len(blobs) == 0:
            return pa.FixedSizeListArray.from_arrays(pa.array([], pa.float32()), 10)
        model = lookup(ModelRef(str(names[0].as_py()), int(versions[0].as_py())))
        x = pixels_of(blobs)
        probabilities = model.forward(x)
        return pa.FixedSizeListArray.from_arrays(pa.array(probabilities.reshape(-1), pa.float32()), 10)

    con.create_function(  # type: ignore[call-overload]
        UDF_NAME,
        forward,
        [duckdb.sqltype("BLOB"), duckdb.sqltype("VARCHAR"), duckdb.sqltype("INTEGER")],
        duckdb.sqltype("FLOAT[10]"),
        type="arrow",
        side_effects=False,
    )


def pixels_of(blobs: pa.Array) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """(n, 784) uint8 view of an Arrow binary array whose values are all 784 bytes long."""
    offsets = np.frombuffer(blobs.buffers()[1], np.int32 if blobs.type == pa.binary() else np.int64,
                            count=len(blobs) + 1, offset=blobs.offset * (4 if blobs.type == pa.binary() else 8))
    if not (np.diff(offsets) == 784).all():
        raise ValueError("every image must be exactly 784 bytes")
    data = np.frombuffer(blobs.buffers()[2], np.uint8, count=len(blobs) * 784, offset=int(offsets[0]))
    return data.reshape(-1, 784)


def raw_column(pixels: np.ndarray[Any, np.dtype[np.uint8]]) -> pa.Array:
    """The BLOB column of (n, 784) pixels, built over the numpy buffer without a copy per image."""
    contiguous = np.ascontiguousarray(pixels, np.uint8)
    offsets = np.arange(0, 784 * (len(contiguous) + 1), 784, dtype=np.int32)
    return pa.Array.from_buffers(pa.binary(), len(contiguous), [None, pa.py_buffer(offsets), pa.py_buffer(contiguous)])


#: the tables scoring reads images from (identifiers substituted for {source}; never user input)
SOURCES = frozenset({"ss_incoming", "ss_pixels"})


def _source(source: str) -> str:
    if source not in SOURCES:
        raise ValueError(f"{source!r} is not one of the staging tables {sorted(SOURCES)}")
    return source


def score_with_udf(con: duckdb.DuckDBPyConnection, source: str, model: ModelRef) -> None:
    """ss_scores from the UDF over ``source`` (statement score_with_udf)."""
    con.execute(sql("duckdb", "score_with_udf").format(source=_source(source)),
                {"name": model.name, "version": model.version})


def score_with_sql(con: duckdb.DuckDBPyConnection, source: str, model: ModelArtifact) -> None:
    """ss_scores from the pure-SQL pass: sql_input, then sql_layer and sql_activate per layer."""
    con.execute(sql("duckdb", "sql_input").format(source=_source(source)), {"input_scale": model.input_scale})
    for layer, activation in enumerate(model.activations):
        con.execute(sql("duckdb", "sql_layer"), {"name": model.name, "version": model.version, "layer": layer})
        con.execute(sql("duckdb", "sql_activate").format(activation=activation_sql("duckdb", activation)))
    con.execute(sql("duckdb", "sql_scores"))


def arrow_batch(batch: ImageBatch, with_pixel_lists: bool) -> pa.Table:
    """The batch as an Arrow table: ``raw`` (BLOB) for storage and the UDF, ``pixels``
    (UTINYINT[784]) only for the pure-SQL scorer, which is the one that reads lists."""
    labels = batch.labels.astype(np.int8)
    lists = {"pixels": pa.FixedSizeListArray.from_arrays(pa.array(batch.pixels.reshape(-1), pa.uint8()), 784)}
    return pa.table({
        "image_id": pa.array(batch.image_ids, pa.string()),
        **(lists if with_pixel_lists else {}),
        "raw": raw_column(batch.pixels),
        "label": pa.array(labels, pa.int8(), mask=labels < 0),
        "produced_at": pa.array(batch.produced_at, pa.int64()),
        "src_topic": pa.array([s.topic for s in batch.sources], pa.string()),
        "src_partition": pa.array([s.partition for s in batch.sources], pa.int32()),
        "src_offset": pa.array([s.offset for s in batch.sources], pa.int64()),
    })
