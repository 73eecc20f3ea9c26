"""Model storage in DuckDB: a version's weights as model_layers rows, and the lifecycle snapshot.

Plain functions over the connection; the backend holds the transaction and translates errors.
"""

from __future__ import annotations

import json
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from streamscore.backends.base import ModelRef
from streamscore.backends.checks import already_installed, not_installed
from streamscore.backends.sqlfiles import sql
from streamscore.model.artifact import ModelArtifact

ENGINE = "duckdb"


def install(con: duckdb.DuckDBPyConnection, artifact: ModelArtifact) -> None:
    """Insert ``artifact``'s rows, unless that version is stored with the same weights (see already_installed)."""
    ref = ModelRef(artifact.name, artifact.version)
    manifest = json.dumps(artifact.manifest | {"sha256": artifact.sha256}, sort_keys=True)
    key = {"name": ref.name, "version": ref.version}
    stored = con.execute(sql(ENGINE, "select_model_digest"), key).fetchall()
    if already_installed(ref, stored[0][0] if stored else None, artifact):
        return
    con.register("ss_model_rows", model_rows(artifact))
    try:
        con.execute(sql(ENGINE, "insert_model_layers"))
    finally:
        con.unregister("ss_model_rows")
    con.execute(sql(ENGINE, "insert_model"), {
        "name": artifact.name, "version": artifact.version, "activations": list(artifact.activations),
        "input_scale": artifact.input_scale, "sha256": artifact.sha256, "manifest": manifest,
    })


def read(con: duckdb.DuckDBPyConnection, ref: ModelRef, where: str) -> tuple[tuple[Any, ...], pa.Table]:
    """The models row and model_layers rows of ``ref`` (ArtifactError not-installed, naming ``where``)."""
    key = {"name": ref.name, "version": ref.version}
    heads = con.execute(sql(ENGINE, "select_model_head"), key).fetchall()
    if not heads:
        raise not_installed(ref, where)
    rows: pa.Table = con.sql(sql(ENGINE, "select_model_layers"), params=key).to_arrow_table()
    return heads[0], rows


def artifact_from_rows(ref: ModelRef, head: tuple[Any, ...], rows: pa.Table) -> ModelArtifact:
    """The artifact the rows of :func:`read` hold, its digest checked."""
    weights, biases = layers_from_rows(rows)
    activations, input_scale, sha256, manifest = head
    artifact = ModelArtifact(
        ref.name, ref.version, tuple(activations), float(input_scale), tuple(weights),
        tuple(biases), json.loads(manifest),
    )
    artifact.validate(expected_sha256=sha256)
    return artifact


def stored_lifecycle(con: duckdb.DuckDBPyConnection, name: str) -> tuple[int, str] | None:
    rows = con.execute(sql(ENGINE, "select_lifecycle"), {"name": name}).fetchall()
    return (int(rows[0][0]), str(rows[0][1])) if rows else None


def store_lifecycle(con: duckdb.DuckDBPyConnection, name: str, revision: int, state: str) -> None:
    con.execute(sql(ENGINE, "upsert_lifecycle"), {"name": name, "revision": revision, "state": state})


def model_rows(artifact: ModelArtifact) -> pa.Table:
    """model_layers rows: one per output unit with that unit's incoming weights (a column of W)."""
    layers, units, weights, biases = [], [], [], []
    for index, (w, b) in enumerate(zip(artifact.weights, artifact.biases, strict=True)):
        columns = np.ascontiguousarray(w.T)
        layers += [index] * w.shape[1]
        units += list(range(w.shape[1]))
        weights += list(columns)
        biases.append(b)
    return pa.table({
        "name": pa.array([artifact.name] * len(units)),
        "version": pa.array([artifact.version] * len(units), pa.int32()),
        "layer": pa.array(layers, pa.int32()),
        "unit": pa.array(units, pa.int32()),
        "weights": pa.array(weights, pa.list_(pa.float32())),
        "bias": pa.array(np.concatenate(biases), pa.float32()),
    })


def layers_from_rows(rows: pa.Table) -> tuple[list[np.ndarray[Any, Any]], list[np.ndarray[Any, Any]]]:
    """Rebuild (weights, biases) per layer from model_layers rows ordered by layer, unit."""
    weights: list[np.ndarray[Any, Any]] = []
    biases: list[np.ndarray[Any, Any]] = []
    layer_col = rows.column("layer").to_numpy()
    for layer in sorted(set(layer_col.tolist())):
        part = rows.filter(pa.array(layer_col == layer))
        column = part.column("weights").combine_chunks()  # one list of weights per unit, all of one length
        values = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
        weights.append(np.ascontiguousarray(values.reshape(len(column), -1).T))
        biases.append(part.column("bias").to_numpy().astype(np.float32))
    return weights, biases
