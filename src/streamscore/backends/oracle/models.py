"""Model storage in Oracle: a version's models and model_layers rows, and the lifecycle snapshot.

Plain functions over a cursor; the backend holds the transaction (commit, rollback) and
translates errors.
"""

from __future__ import annotations

from typing import Any

import oracledb

from streamscore.backends.base import ModelRef
from streamscore.backends.checks import already_installed, not_installed
from streamscore.backends.oracle import statements as oracle_sql
from streamscore.model.artifact import ModelArtifact


def insert(cursor: oracledb.Cursor, artifact: ModelArtifact) -> int | None:
    """Insert the version's rows: the number of layers, or None when it is installed with the same weights."""
    model_bind, layer_binds = oracle_sql.model_binds(artifact)
    ref = ModelRef(artifact.name, artifact.version)
    cursor.execute(oracle_sql.statement("select_model_digest"), [ref.name, ref.version])
    existing = cursor.fetchone()
    if already_installed(ref, None if existing is None else str(existing[0]), artifact):
        return None
    if model_bind[-1] is None:
        # a NULL canary: type it RAW, a NULL string would not convert to BLOB
        cursor.setinputsizes(*[None] * 6, oracledb.DB_TYPE_RAW)
    cursor.execute(oracle_sql.statement("insert_model"), model_bind)
    for layer in layer_binds:  # a few rows; each weights BLOB is bound as bytes
        cursor.execute(oracle_sql.statement("insert_layer"), layer)
    return len(layer_binds)


def read(cursor: oracledb.Cursor, ref: ModelRef, where: str) -> tuple[Any, list[Any]]:
    """The models row and model_layers rows of ``ref`` (ArtifactError not-installed, naming ``where``)."""
    cursor.execute(oracle_sql.statement("select_model"), [ref.name, ref.version], fetch_lobs=False)
    model_row = cursor.fetchone()
    if model_row is None:
        raise not_installed(ref, where)
    cursor.execute(oracle_sql.statement("select_layers"), [ref.name, ref.version], fetch_lobs=False)
    return model_row, cursor.fetchall()


def read_lifecycle(cursor: oracledb.Cursor, name: str) -> tuple[int, str] | None:
    cursor.execute(oracle_sql.statement("select_lifecycle"), [name], fetch_lobs=False)
    row = cursor.fetchone()
    return None if row is None else (int(row[0]), str(row[1]))


def write_lifecycle(cursor: oracledb.Cursor, name: str, revision: int, state: str) -> None:
    cursor.execute(oracle_sql.statement("merge_lifecycle"), [name, revision, state, state])
