"""Scoring inside Oracle 23ai with its ONNX runtime (``oracle://…?scorer=onnx``), issue 16 item 8.

NEVER RUN AGAINST A DATABASE: written from Oracle's documentation (DBMS_VECTOR.LOAD_ONNX_MODEL,
PREDICTION, PREDICTION_PROBABILITY); the graph itself is checked with onnxruntime offline
(onnx_model). Each model version becomes a mining model named by :func:`mining_model_name`,
loaded from the artifact the tables hold, once, before a batch's transaction (loading is DDL
and commits). A batch is then one ``INSERT … SELECT`` (``onnx_score_staged`` in
sql/oracle/onnx.sql) over ``mnist_batch_ids``, in place of ``mnist_scorer.score_staged``.
Databases before 23ai get a warning and the PL/SQL scorer. The user needs
``CREATE MINING MODEL`` (the optional grant in sql/oracle/00_create_user.sql).
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

import oracledb

from streamscore.backends.base import ModelRef
from streamscore.backends.oracle import onnx_model
from streamscore.backends.oracle import statements as oracle_sql
from streamscore.model.artifact import INPUTS, ModelArtifact

log = logging.getLogger(__name__)

#: the first release with in-database ONNX scoring (23ai; 26ai reports 23 too)
MIN_MAJOR_VERSION = 23


def mining_model_name(ref: ModelRef) -> str:
    """An identifier for (name, version): model names may hold any character, identifiers not."""
    digest = hashlib.sha256(f"{ref.name}:{ref.version}".encode()).hexdigest()[:24].upper()
    return f"SS_{digest}"


def attribute_names() -> list[str]:
    """The 784 attributes the metadata maps onto the ONNX input (P0 … P783)."""
    names: list[str] = onnx_model.oracle_metadata()["input"][onnx_model.INPUT_NAME]
    assert len(names) == INPUTS
    return names


def score_statement(ref: ModelRef) -> str:
    """onnx_score_staged with the model identifier and the 784 pixel columns filled in."""
    names = attribute_names()
    attributes = ", ".join(
        f"TO_NUMBER(RAWTOHEX(UTL_RAW.SUBSTR(i.pixels, {index + 1}, 1)), 'XX') AS {name}"
        for index, name in enumerate(names)
    )
    using = ", ".join(f"v.{name}" for name in names)
    template = oracle_sql.statement("onnx_score_staged")
    return template.replace("{model}", mining_model_name(ref)).replace(
        "{attributes}", attributes).replace("{using}", using)


def supports_onnx(server_version: str) -> bool:
    """Whether an Oracle ``connection.version`` ("23.26.0.0.0") has in-database ONNX."""
    try:
        return int(server_version.split(".")[0]) >= MIN_MAJOR_VERSION
    except ValueError:
        return False


def ensure_loaded(cursor: oracledb.Cursor, ref: ModelRef, artifact: ModelArtifact) -> bool:
    """Load ``artifact`` as the mining model of ``ref`` unless it exists; True when loaded now.

    DDL: commits. Call it outside a batch's transaction.
    """
    name = mining_model_name(ref)
    cursor.execute(oracle_sql.statement("onnx_model_exists"), [name])
    row = cursor.fetchone()
    if row is not None and int(row[0]) > 0:
        return False
    cursor.setinputsizes(None, oracledb.DB_TYPE_BLOB, None)
    cursor.execute(oracle_sql.statement("onnx_load_model"),
                   [name, onnx_model.to_onnx_bytes(artifact), json.dumps(onnx_model.oracle_metadata())])
    log.info("loaded model %s into the database's ONNX runtime as %s", ref, name)
    return True


def score(cursor: oracledb.Cursor, ref: ModelRef, scored_at: int) -> None:
    """Score the staged batch (mnist_batch_ids) with the mining model of ``ref``."""
    binds: list[Any] = [ref.name, ref.version, ref.role, scored_at, ref.name, ref.version, ref.role]
    cursor.execute(score_statement(ref), binds)
