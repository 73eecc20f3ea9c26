"""The PostgreSQL backend's statements, connection string and row conversions.

Statements live in ``sql/postgres/*.sql`` (plain files a DBA can read), looked up by name;
this module builds libpq connection parameters from a :class:`BackendURL` and turns
artifacts and batches into bind values and back. Only identifiers (the schema name)
are ever composed into SQL, with :class:`psycopg.sql.Identifier`; values are binds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import struct
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from psycopg import adapters, pq, sql
from psycopg.adapt import Buffer, Dumper
from psycopg.conninfo import make_conninfo

from streamscore.backends.base import ImageBatch, ModelRef, ScoredBatch, ServingSet, TopicPartitionKey
from streamscore.backends.sqlfiles import read_sql, script
from streamscore.backends.sqlfiles import sql as named
from streamscore.backends.url import BackendURL
from streamscore.model.artifact import OUTPUTS, ModelArtifact

ENGINE = "postgres"
SCHEMA_FILE = "schema.sql"
FUNCTION_FILE = "score_batch.sql"
FUNCTION_NAME = "streamscore_score_batch"
FUNCTION_SIGNATURE = f"{FUNCTION_NAME}(text[], bytea[], text, integer)"

#: key of the pg_advisory_xact_lock taken around the DDL ("stream" in ASCII)
SCHEMA_LOCK_KEY = 0x73747265616D

#: URL query options this backend reads itself
OWN_OPTIONS = frozenset({"schema"})
#: libpq connection keywords a URL may set (host, port, user, password and dbname are URL parts)
LIBPQ_OPTIONS = frozenset(
    d.keyword.decode() for d in pq.Conninfo.get_defaults()
) - {"host", "port", "user", "password", "dbname"}

#: column types of ss_incoming in the column order of the copy_staging statement
STAGING_TYPES = ("text", "bytea", "int2", "int8", "text", "int4", "int8")
#: column types of the copy_images statement (the staging columns, then batch_id)
IMAGE_TYPES = (*STAGING_TYPES, "text")


def statement(name: str) -> str:
    """The named statement ``name`` of ``sql/postgres/*.sql``."""
    return named(ENGINE, name)


def with_schema(name: str, schema: str) -> sql.Composed:
    """A named statement with ``{schema}`` filled in as an identifier (the only substitution)."""
    return sql.SQL(statement(name)).format(schema=sql.Identifier(schema))


def set_search_path(schema: str) -> sql.Composed:
    return with_schema("set_search_path", schema)


def schema_statements() -> list[str]:
    """The statements of the schema script, in file order."""
    return [part.text for part in script(ENGINE, SCHEMA_FILE)]


def function_statement() -> str:
    """The whole script file, sent as one text: streamscore_score_batch and streamscore_cached_models."""
    (only,) = script(ENGINE, FUNCTION_FILE)
    return only.text


def function_digest() -> str:
    """sha256 of the PL/Python function file: it is replaced in the database only when this changes."""
    return hashlib.sha256(read_sql(ENGINE, FUNCTION_FILE).encode()).hexdigest()


def conninfo(url: BackendURL) -> str:
    """libpq parameters from the URL (our own options removed); defaults for timeout and name."""
    params = {key: value for key, value in url.options.items() if key not in OWN_OPTIONS}
    params.setdefault("connect_timeout", "10")
    params.setdefault("application_name", "streamscore")
    return make_conninfo(
        "", host=url.host, port=url.port, user=url.username, password=url.password,
        dbname=url.database or None, **params,
    )


def staging_rows(batch: ImageBatch) -> Iterator[tuple[Any, ...]]:
    """ss_incoming rows in the column order of copy_staging (label NULL where the message had none)."""
    for row, image_id in enumerate(batch.image_ids):
        label = int(batch.labels[row])
        source = batch.sources[row] if row < len(batch.sources) else None
        yield (
            image_id,
            batch.pixels[row].tobytes(),
            label if label >= 0 else None,
            int(batch.produced_at[row]),
            source.topic if source else None,
            source.partition if source else None,
            source.offset if source else None,
        )


def offset_params(group: str, offsets: dict[TopicPartitionKey, int]) -> dict[str, Any]:
    keys = sorted(offsets)  # a fixed order: concurrent writers lock the rows alike
    return {
        "group_id": group,
        "topics": [topic for topic, _ in keys],
        "partitions": [partition for _, partition in keys],
        "offsets": [offsets[key] for key in keys],
    }


class Float4Array:
    """A float32 vector bound as ``real[]`` in PostgreSQL's binary array format, built by numpy.

    psycopg adapts a Python list element by element: ≈ 95 ms for the 78,400 weights of the
    784-100-10 MLP, most of an install, which runs between two batches (the swap gap).
    """

    def __init__(self, values: npt.ArrayLike) -> None:
        self.values = np.ascontiguousarray(values, np.float32).reshape(-1)


class Float4ArrayDumper(Dumper):
    format = pq.Format.BINARY
    oid = 1021  # real[]

    def dump(self, obj: Float4Array) -> Buffer:
        """ndim, has-nulls, element oid (700 real), size and lower bound, then (length 4, value) per element."""
        if not len(obj.values):
            return struct.pack(">iii", 0, 0, 700)
        body = np.empty(len(obj.values), [("size", ">i4"), ("value", ">f4")])
        body["size"], body["value"] = 4, obj.values
        return struct.pack(">iiiii", 1, 0, 700, len(obj.values), 1) + body.tobytes()


adapters.register_dumper(Float4Array, Float4ArrayDumper)


def model_params(artifact: ModelArtifact) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Bind values for the models row and the model_layers rows of an artifact."""
    head = {
        "name": artifact.name,
        "version": artifact.version,
        "activations": list(artifact.activations),
        "input_scale": artifact.input_scale,
        "sha256": artifact.sha256,
        "manifest": json.dumps(artifact.manifest | {"sha256": artifact.sha256}, sort_keys=True),
    }
    layers = [
        {
            "name": artifact.name, "version": artifact.version, "layer": index,
            "inputs": int(w.shape[0]), "outputs": int(w.shape[1]),
            "weights": Float4Array(w), "biases": Float4Array(b),
        }
        for index, (w, b) in enumerate(zip(artifact.weights, artifact.biases, strict=True))
    ]
    return head, layers


def artifact_from_rows(ref: ModelRef, head: Sequence[Any], layers: Sequence[Sequence[Any]]) -> ModelArtifact:
    """Rebuild an artifact from its rows and verify it against the stored digest."""
    activations, input_scale, sha256, manifest = head
    weights = tuple(
        np.asarray(w, np.float32).reshape(int(inputs), int(outputs)) for inputs, outputs, w, _ in layers
    )
    biases = tuple(np.asarray(b, np.float32) for *_, b in layers)
    manifest_dict = manifest if isinstance(manifest, dict) else json.loads(manifest)
    artifact = ModelArtifact(
        ref.name, ref.version, tuple(activations), float(input_scale), weights, biases, manifest_dict
    )
    artifact.validate(expected_sha256=sha256)
    return artifact


def probabilities(rows: Sequence[Sequence[float]]) -> npt.NDArray[np.float32]:
    if not rows:
        return np.zeros((0, OUTPUTS), np.float32)
    return np.asarray(rows, np.float32).reshape(-1, OUTPUTS)


def in_batch_order(image_ids: Sequence[str], chosen: set[str]) -> list[str]:
    """The ids of ``chosen`` in the order of ``image_ids``."""
    return [image_id for image_id in image_ids if image_id in chosen] if chosen else []


def scored_batch(rows: Sequence[Sequence[Any]], model: ModelRef, conflicts: list[str] | None = None) -> ScoredBatch:
    """ScoredBatch from (image_id, predicted, probabilities, scored_at) rows (and the id conflicts)."""
    return ScoredBatch(
        image_ids=[str(row[0]) for row in rows],
        predicted=np.asarray([row[1] for row in rows], np.int64),
        probabilities=probabilities([row[2] for row in rows]),
        scored_at=np.asarray([row[3] for row in rows], np.int64),
        model=model,
        conflicts=list(conflicts or []),
    )


def set_params(serving: ServingSet, image_ids: list[str]) -> dict[str, Any]:
    """Binds of score_set: the versions and roles to score (members, champion, shadows), the ensemble's
    version (the newest member; None without an ensemble) and the batch's ids."""
    refs = serving.served + serving.shadows
    return {
        "name": serving.served[0].name, "image_ids": image_ids,
        "versions": [ref.version for ref in refs], "roles": [ref.role for ref in refs],
        "ensemble_version": serving.served_ref.version if serving.is_ensemble else None,
    }


def scored_set(rows: Sequence[Sequence[Any]], serving: ServingSet, conflicts: list[str]) -> list[ScoredBatch]:
    """One ScoredBatch per served/shadow ref from score_set's (version, role, image_id, predicted,
    probabilities, scored_at) rows; the served one first."""
    by_ref: dict[tuple[int, str], list[Sequence[Any]]] = {}
    for row in rows:
        by_ref.setdefault((int(row[0]), str(row[1])), []).append(row[2:])
    served = serving.served_ref
    results = []
    for ref in (served, *serving.shadows):
        result = scored_batch(by_ref.get((ref.version, ref.role), []), ref, conflicts)
        results.append(dataclasses.replace(result, members=serving.members) if ref.role == "ensemble" else result)
    return results
