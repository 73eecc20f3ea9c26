"""Kinetica table layout and the conversions between streamscore objects and rows.

The tables are created by ``sql/kinetica/schema.sql`` (the file a DBA reads). The
column lists here mirror it for the rows the backend writes; a unit test keeps the
two in step. Everything in this module works offline (no server needed).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Sequence
from typing import Any

import gpudb
import numpy as np

from streamscore.backends.base import ImageBatch, ModelRef, ScoredBatch, TopicPartitionKey
from streamscore.backends.checks import predictions_missing
from streamscore.backends.sqlfiles import read_sql, split_script
from streamscore.backends.sqlfiles import sql as named
from streamscore.errors import ArtifactError, BackendDataError, BackendError, ConfigError
from streamscore.model.artifact import ModelArtifact, layers_json
from streamscore.shared.messages import MAX_KEY_BYTES

PIXELS = 784
CLASSES = 10
PROBABILITY_COLUMNS = tuple(f"p{k}" for k in range(CLASSES))
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")

#: native-API mirror of schema.sql, [name, base type, *properties] as GPUdbTable takes them
IMAGE_COLUMNS: list[list[str]] = [
    ["image_id", "string", "char128", "primary_key", "shard_key"],
    ["pixels", "bytes"],
    ["label", "int", "int16", "nullable"],
    ["produced_at", "long", "timestamp"],
    ["batch_id", "string", "char64"],
]
MODEL_COLUMNS: list[list[str]] = [
    ["model_name", "string", "char64", "primary_key"],
    ["model_version", "long", "primary_key"],
    ["model_id", "string", "char128"],
    ["sha256", "string", "char64"],
    ["input_scale", "double"],
    ["manifest", "string"],
    ["canary_pixels", "bytes", "nullable"],
    ["loss", "double", "nullable"],
    ["created_at", "long", "timestamp"],
]
LAYER_COLUMNS: list[list[str]] = [
    ["model_name", "string", "char64", "primary_key"],
    ["model_version", "long", "primary_key"],
    ["layer", "int", "primary_key"],
    ["n_in", "int"],
    ["n_out", "int"],
    ["activation", "string", "char16"],
    ["weights", "bytes"],
    ["biases", "bytes"],
]
OFFSET_COLUMNS: list[list[str]] = [
    ["consumer_group", "string", "char256", "primary_key"],
    ["topic", "string", "char256", "primary_key"],
    ["partition_id", "int", "primary_key"],
    ["next_offset", "long"],
    ["updated_at", "long", "timestamp"],
]
INBOX_COLUMNS: list[list[str]] = [
    ["image_id", "string", "char128", "primary_key", "shard_key"],
    ["batch_id", "string", "char64", "primary_key"],
    ["pixels", "bytes"],
    ["created_at", "long", "timestamp"],
]
#: the columns of score_inbox the inference UDF reads, in its order
UDF_INPUT_COLUMNS = ["image_id", "pixels", "batch_id"]
TRAINING_COLUMNS: list[list[str]] = [
    ["image_id", "string", "char128", "primary_key"],
    ["pixels", "bytes"],
    ["label", "int", "int16"],
]
STAGE_COLUMNS: list[str] = [
    "image_id", "batch_id", "model_name", "model_version", "role", "model_id", "predicted",
    *PROBABILITY_COLUMNS, "scored_at",
]
#: table name → mirrored columns, for the tables the backend inserts into
TABLES: dict[str, list[list[str]]] = {
    "images": IMAGE_COLUMNS,
    "score_inbox": INBOX_COLUMNS,
    "models": MODEL_COLUMNS,
    "model_layers": LAYER_COLUMNS,
    "consumer_offsets": OFFSET_COLUMNS,
    "training_images": TRAINING_COLUMNS,
}


def check_identifier(value: str, what: str) -> str:
    """``value`` if it is a plain SQL identifier (it is substituted into SQL text)."""
    if not _IDENTIFIER.fullmatch(value):
        raise ConfigError(f"Kinetica {what} {value!r} must be a plain identifier ([A-Za-z_][A-Za-z0-9_]*)")
    return value


def sql(name: str, schema: str, binds: int = 0, first: int = 1, versions: int = 0) -> str:
    """The named statement ``name`` of ``sql/kinetica/*.sql`` with the schema identifier filled in
    (and ``{ids}``, where a statement has it, as ``binds`` placeholders $first, $first+1 …, then
    ``{versions}`` as ``versions`` more)."""
    placeholders = ", ".join(f"${n}" for n in range(first, first + binds))
    more = ", ".join(f"${n}" for n in range(first + binds, first + binds + versions))
    return named("kinetica", name).format(schema=check_identifier(schema, "schema"), ids=placeholders, versions=more)


_CHAR_BYTES = {"char16": 16, "char64": 64, "char128": 128, "char256": 256}


def oversized(records: Sequence[Sequence[Any]], columns: Sequence[Sequence[str]]) -> list[str]:
    """``column=value…`` for every string too long for its charN column: Kinetica (and
    kinetica_proc for UDF output) would truncate it silently, so callers refuse it first."""
    limits = [(i, c[0], next((_CHAR_BYTES[p] for p in c[2:] if p in _CHAR_BYTES), None))
              for i, c in enumerate(columns)]
    return [f"{name}={str(record[i])[:40]!r}… ({len(str(record[i]).encode())} > {limit} bytes)"
            for record in records for i, name, limit in limits
            if limit is not None and record[i] is not None and len(str(record[i]).encode()) > limit]


def check_model_fits(ref: ModelRef, layers: Sequence[Sequence[Any]], head: Sequence[Any]) -> None:
    """ArtifactError ``bad-name`` when a model's rows hold a string longer than its column."""
    too_long = oversized(layers, LAYER_COLUMNS) + oversized([head], MODEL_COLUMNS)
    if too_long:
        raise ArtifactError(f"{ref} does not fit the Kinetica columns: {'; '.join(too_long)}", reason="bad-name")


def check_offsets_fit(records: Sequence[Sequence[Any]]) -> None:
    """ConfigError when a consumer group or topic is longer than its consumer_offsets column."""
    too_long = oversized(records, OFFSET_COLUMNS)
    if too_long:
        raise ConfigError(f"consumer group or topic too long for Kinetica's consumer_offsets: {too_long[0]}; "
                          "use a shorter name")


def conflicting_rows(records: Sequence[Sequence[Any]], stored: Sequence[Sequence[Any]]) -> set[str]:
    """Ids of ``images`` records stored (``select_images`` rows) with other pixels or label."""
    wanted = {str(record[0]): record for record in records}
    conflicts: set[str] = set()
    for image_id, pixels, label in stored:
        record = wanted.get(str(image_id))
        stored_label = None if label is None else int(label)
        if record is not None and (bytes(pixels) != record[1] or stored_label != record[2]):
            conflicts.add(str(image_id))
    return conflicts


def select_in_schema(db: gpudb.GPUdb, schema: str, name: str) -> list[Sequence[Any]]:
    """Rows of the named statement ``name``, which names its tables unqualified (evaluation.sql, as a DBA
    pastes it after SET CURRENT SCHEMA): run with ``schema`` as the current schema, not rewritten."""
    with db.query(named("kinetica", name), sql_opts={"current_schema": check_identifier(schema, "schema")}) as rows:
        return [list(row) for row in rows]


def schema_statements(schema: str) -> list[str]:
    """The statements of ``sql/kinetica/schema.sql``, in order, for this schema."""
    text = read_sql("kinetica", "schema.sql").format(schema=check_identifier(schema, "schema"))
    return [part.text for part in split_script(text, "sql/kinetica/schema.sql")]


def model_id(name: str, version: int, sha256: str) -> str:
    """The id every prediction carries (udfs/mnist_train.py builds the same)."""
    return f"{name}-v{version}-{sha256[:12]}"


def record_type(columns: Sequence[Sequence[str]], label: str) -> gpudb.GPUdbRecordType:
    """The gpudb record type of a mirrored table (binary encoding without a server)."""
    return gpudb.GPUdbRecordType(
        [gpudb.GPUdbRecordColumn(c[0], c[1], list(c[2:])) for c in columns], label=label
    )


def encode_binary(records: Sequence[Sequence[Any]], columns: Sequence[Sequence[str]]) -> list[bytes]:
    """Avro binary records, exactly as GPUdbTable sends them."""
    rtype = record_type(columns, "streamscore")
    return [gpudb.GPUdbRecord(rtype, list(values)).binary_data for values in records]


# -- rows the backend writes ---------------------------------------------------------------
def image_records(batch: ImageBatch, rows: Sequence[int], batch_id: str) -> list[list[Any]]:
    """``images`` rows (column order of IMAGE_COLUMNS) for the given batch rows."""
    if batch.pixels.shape[1:] != (PIXELS,):
        raise BackendDataError(f"pixels have shape {batch.pixels.shape}, expected (n, {PIXELS})")
    records: list[list[Any]] = []
    for row in rows:
        image_id = batch.image_ids[row]
        if not image_id or len(image_id.encode()) > MAX_KEY_BYTES:
            raise BackendDataError(f"image id {image_id[:40]!r} is empty or over {MAX_KEY_BYTES} bytes")
        label = int(batch.labels[row])
        records.append([
            image_id,
            np.ascontiguousarray(batch.pixels[row], np.uint8).tobytes(),
            label if label >= 0 else None,
            int(batch.produced_at[row]),
            batch_id,
        ])
    return records


def inbox_records(image_ids: Sequence[str], pixels: Sequence[bytes], batch_id: str, now_ms: int) -> list[list[Any]]:
    """``score_inbox`` rows (column order of INBOX_COLUMNS): the UDF's input for one run."""
    return [[image_id, batch_id, raw, now_ms] for image_id, raw in zip(image_ids, pixels, strict=True)]


def pixel_records(pixels: np.ndarray, batch_id: str, now_ms: int) -> list[list[Any]]:
    """``score_inbox`` rows for bare pixels (Backend.score; ids are private to the call)."""
    return inbox_records([f"{batch_id}/{i}" for i in range(len(pixels))],
                         [np.ascontiguousarray(p, np.uint8).tobytes() for p in pixels], batch_id, now_ms)


def weights_params(artifact: ModelArtifact) -> dict[str, str]:
    """The inference UDF's model params (udfs/mnist_infer.py ``model_from_params``): the weights
    travel with every run (base64 in text params) instead of every rank reading them back."""
    layers = [[int(w.shape[0]), int(w.shape[1]), act,
               base64.b64encode(np.ascontiguousarray(w, "<f4").tobytes()).decode(),
               base64.b64encode(np.ascontiguousarray(b, "<f4").tobytes()).decode()]
              for w, b, act in zip(artifact.weights, artifact.biases, artifact.activations, strict=True)]
    params = {"model_id": model_id(artifact.name, artifact.version, artifact.sha256), "sha256": artifact.sha256,
              "input_scale": repr(float(artifact.input_scale)), "layers": json.dumps(layers)}
    if artifact.layered:  # the layer list exactly as the digest covers it (artifact.weights_digest)
        params["spec"] = layers_json(artifact.layers)
    return params


def offset_records(group: str, offsets: dict[TopicPartitionKey, int], now_ms: int) -> list[list[Any]]:
    return [[group, topic, partition, next_offset, now_ms]
            for (topic, partition), next_offset in sorted(offsets.items())]


def layer_records(artifact: ModelArtifact) -> list[list[Any]]:
    return [
        [artifact.name, artifact.version, index, int(w.shape[0]), int(w.shape[1]), act,
         np.ascontiguousarray(w, "<f4").tobytes(), np.ascontiguousarray(b, "<f4").tobytes()]
        for index, (w, b, act) in enumerate(
            zip(artifact.weights, artifact.biases, artifact.activations, strict=True))
    ]


def model_record(artifact: ModelArtifact, now_ms: int) -> list[Any]:
    sha = artifact.sha256
    manifest = artifact.manifest | {
        "name": artifact.name, "version": artifact.version,
        "activations": list(artifact.activations), "input_scale": artifact.input_scale,
        "layers": [layer.to_json() for layer in artifact.layers] if artifact.layered else artifact.layer_sizes,
        "sha256": sha,
    }
    canary = artifact.canary_pixels
    loss = manifest.get("metrics", {}).get("loss")
    return [
        artifact.name, artifact.version, model_id(artifact.name, artifact.version, sha), sha,
        float(artifact.input_scale), json.dumps(manifest, sort_keys=True),
        None if canary is None else np.ascontiguousarray(canary, np.uint8).tobytes(),
        None if loss is None else float(loss), int(manifest.get("created_at", now_ms)),
    ]


def artifact_from_rows(
    name: str, version: int, model_row: Sequence[Any], layer_rows: Sequence[Sequence[Any]]
) -> ModelArtifact:
    """Rebuild and verify an artifact from ``select_model`` + ``select_layers`` rows."""
    _model_id, sha, input_scale, manifest_text, canary = model_row
    manifest = json.loads(manifest_text)
    weights, biases, activations = [], [], []
    for expected, (layer, n_in, n_out, activation, w, b) in enumerate(layer_rows):
        if int(layer) != expected:
            raise BackendError(f"model {name} v{version}: layer {expected} is missing from model_layers")
        weights.append(np.frombuffer(bytes(w), "<f4").reshape(int(n_in), int(n_out)).astype(np.float32))
        biases.append(np.frombuffer(bytes(b), "<f4").reshape(int(n_out)).astype(np.float32))
        activations.append(str(activation))
    canary_pixels = None if canary is None else np.frombuffer(bytes(canary), np.uint8).reshape(-1, PIXELS)
    artifact = ModelArtifact(
        name, version, tuple(activations), float(input_scale), tuple(weights), tuple(biases),
        manifest, canary_pixels,
    )
    try:
        artifact.validate(expected_sha256=str(sha))
    except ArtifactError as exc:
        raise BackendError(f"model {name} v{version} in Kinetica is damaged: {exc.message}") from exc
    return artifact


def scored_batch(
    image_ids: list[str], stored: list[list[Any]], model: ModelRef, scored_at: int, conflicts: list[str] | None = None,
) -> ScoredBatch:
    """The batch's predictions in the order of ``image_ids``; ``scored_at`` is this pass's time."""
    by_id = {str(row[0]): row for row in stored}
    missing = [i for i in image_ids if i not in by_id]
    if missing:
        raise predictions_missing(missing, len(image_ids), model)
    rows = [by_id[i] for i in image_ids]
    return ScoredBatch(
        image_ids=image_ids,
        predicted=np.asarray([int(r[1]) for r in rows], np.int64),
        probabilities=np.asarray([r[2:12] for r in rows], np.float32).reshape(-1, CLASSES),
        scored_at=np.full(len(rows), scored_at, np.int64),
        model=model,
        conflicts=list(conflicts or []),
    )
