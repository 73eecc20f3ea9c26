"""Oracle backend, the parts that need no server: URL → connect arguments, the statements
by name, batch → bind rows, model artifact ↔ table rows, prediction rows → ScoredBatch.

Every value travels as a bind variable. The statements live in ``sql/oracle/queries.sql``
(looked up by name with :func:`statement`), the DDL and the PL/SQL scorer in the scripts
``sql/oracle/schema.sql`` and ``sql/oracle/mnist_scorer.sql``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from streamscore.backends.base import ImageBatch, ModelRef, ScoredBatch, TopicPartitionKey
from streamscore.backends.checks import predictions_missing
from streamscore.backends.sqlfiles import Statement, read_sql, sql
from streamscore.backends.url import BackendURL
from streamscore.errors import ArtifactError, BackendError, ConfigError
from streamscore.model.artifact import INPUTS, OUTPUTS, ModelArtifact

DEFAULT_PORT = 1521
PASSWORD_ENV = "STREAMSCORE_ORACLE_PASSWORD"
PACKAGE_NAME = "MNIST_SCORER"
PACKAGE_FILE = "mnist_scorer.sql"
SCHEMA_FILE = "schema.sql"
#: UTL_NLA_ARRAY_FLT is a VARRAY(1000000): no layer may hold more weights
MAX_LAYER_ENTRIES = 1_000_000
#: ORA codes that mean "this DDL already ran" (init_schema ignores them)
ALREADY_EXISTS_CODES = frozenset({955, 1408, 1430, 2260, 2261, 2275})

# -- connecting ---------------------------------------------------------------------------

#: URL query options → (connect keyword, type); call_timeout (ms) is set on the connection
_URL_OPTIONS: dict[str, type] = {
    "protocol": str,
    "tcp_connect_timeout": float,
    "expire_time": int,
    "retry_count": int,
    "retry_delay": int,
    "call_timeout": int,
    "plsql_timing": int,
    "scorer": str,
    "onnx": int,
}
#: values of the ``scorer`` option (the first is the default)
SCORERS = ("plsql", "onnx")
URL_OPTION_HELP = {
    "protocol": "tcp (default) or tcps",
    "tcp_connect_timeout": "seconds to wait for the listener",
    "expire_time": "minutes between keep-alive probes",
    "retry_count": "connect attempts",
    "retry_delay": "seconds between connect attempts",
    "call_timeout": "milliseconds one database round trip may take (0 = none)",
    "plsql_timing": "1: log the scorer's CPU time per phase after every batch (debug)",
    "scorer": "plsql (default) or onnx: score with Oracle 23ai's ONNX runtime (never run here)",
    "onnx": "deprecated alias: onnx=1 is scorer=onnx, onnx=0 is scorer=plsql",
}


@dataclass(frozen=True)
class OracleTarget:
    """Where to connect (no password: that is resolved at connect time and never stored)."""

    user: str
    dsn: str
    connect_options: dict[str, str | int | float]
    call_timeout_ms: int
    plsql_timing: bool = False
    onnx: bool = False


def parse_target(url: BackendURL) -> OracleTarget:
    """``oracle://user[:password]@host[:port]/service[?option=value]`` → connect arguments."""
    if not url.username:
        raise ConfigError(
            f"backend URL {url.masked()!r} names no user: use oracle://user@host:1521/service"
        )
    if not url.host or not url.database:
        raise ConfigError(
            f"backend URL {url.masked()!r} needs a host and a service name, "
            "e.g. oracle://streamscore@localhost:1521/FREEPDB1"
        )
    options: dict[str, str | int | float] = {}
    for key, raw in url.options.items():
        kind = _URL_OPTIONS.get(key)
        if kind is None:
            raise ConfigError(
                f"unknown option {key!r} in backend URL {url.masked()!r}; "
                f"known: {', '.join(_URL_OPTIONS)}"
            )
        try:
            options[key] = kind(raw)
        except ValueError:
            raise ConfigError(
                f"option {key}={raw!r} in {url.masked()!r} is not a {kind.__name__}"
            ) from None
    call_timeout = int(options.pop("call_timeout", 0))
    plsql_timing = int(options.pop("plsql_timing", 0))
    if plsql_timing not in (0, 1):
        raise ConfigError(f"plsql_timing={plsql_timing} in {url.masked()!r}: use 0 or 1")
    scorer = _scorer(url, options.pop("scorer", None), options.pop("onnx", None))
    protocol = str(options.pop("protocol", "tcp")).lower()
    if protocol not in ("tcp", "tcps"):
        raise ConfigError(f"protocol={protocol!r} in {url.masked()!r}: use tcp or tcps")
    host = f"[{url.host}]" if ":" in url.host else url.host
    prefix = "tcps://" if protocol == "tcps" else ""
    dsn = f"{prefix}{host}:{url.port or DEFAULT_PORT}/{url.database}"
    return OracleTarget(url.username, dsn, options, call_timeout, plsql_timing == 1, scorer == "onnx")


def _scorer(url: BackendURL, scorer: str | int | float | None, onnx: str | int | float | None) -> str:
    """``scorer=plsql|onnx``, or the deprecated alias ``onnx=0|1``; both only when they agree."""
    chosen = str(scorer).lower() if scorer is not None else None
    if chosen is not None and chosen not in SCORERS:
        raise ConfigError(f"scorer={scorer!r} in {url.masked()!r}: use {' or '.join(SCORERS)}")
    if onnx is None:
        return chosen or SCORERS[0]
    if onnx not in (0, 1):
        raise ConfigError(f"onnx={onnx} in {url.masked()!r}: use 0 or 1 (deprecated: write scorer=onnx)")
    alias = "onnx" if onnx == 1 else "plsql"
    if chosen is not None and chosen != alias:
        raise ConfigError(f"scorer={chosen} and onnx={onnx} in {url.masked()!r} disagree: keep scorer=… only")
    return alias


def resolve_password(url: BackendURL, environ: Mapping[str, str]) -> str:
    """The password from the URL, else from STREAMSCORE_ORACLE_PASSWORD (read on call)."""
    password = url.password or environ.get(PASSWORD_ENV)
    if not password:
        raise ConfigError(
            f"no password for {url.masked()!r}: put it in the URL or in {PASSWORD_ENV}"
        )
    return password


def statement(name: str) -> str:
    """The named statement ``name`` of ``sql/oracle/*.sql``."""
    return sql("oracle", name)


#: the scorer (sql/oracle/mnist_scorer.sql): model name, version, role; scores mnist_batch_ids
SCORE_PROCEDURE = "mnist_scorer.score_staged"
#: debug timing of the scorer's phases (URL option plsql_timing=1)
SET_TIMING_PROCEDURE = "mnist_scorer.set_timing"
#: retention: age in seconds, OUT images, OUT predictions, rows per commit
PURGE_PROCEDURE = "mnist_scorer.purge"
TIMINGS_FUNCTION = "mnist_scorer.timings"


def compile_errors(units: Sequence[Statement], errors: Sequence[Sequence[Any]]) -> str:
    """user_errors rows (type, line, position, text) with the line of the package *file*.

    Oracle numbers the lines of each unit from its CREATE line; ``units`` are the file's
    statements (spec, then body) with their start lines, so the reported line matches the file.
    """
    start = {"PACKAGE": units[0], "PACKAGE BODY": units[-1]}
    parts = []
    for kind, line, position, text in list(errors)[:5]:
        unit = start.get(str(kind))
        where = f"{unit.file} line {unit.file_line(int(line))}" if unit else f"{kind} line {line}"
        parts.append(f"{where}:{position} ({kind} line {line}) {str(text).strip()}")
    return "; ".join(parts)


def package_digest() -> str:
    """sha256 of sql/oracle/mnist_scorer.sql: the package is recompiled only when it changes."""
    return hashlib.sha256(read_sql("oracle", PACKAGE_FILE).encode()).hexdigest()


# -- batches ------------------------------------------------------------------------------

ImageBind = tuple[str, bytes, int | None, int, str]
OffsetBind = tuple[str, str, int, int]


def image_binds(batch: ImageBatch, rows: Sequence[int]) -> list[ImageBind]:
    """insert_image parameters for ``rows``: id, 784 pixel bytes, label or NULL, ms, batch id.

    Sorted by image id: consumers whose batches share ids then lock the index entries in the
    same order (a wait instead of an ORA-00060 deadlock), as offsets are sorted too.
    """
    pixels = np.ascontiguousarray(batch.pixels, dtype=np.uint8)
    if pixels.ndim != 2 or pixels.shape[1] != INPUTS:
        raise BackendError(
            f"batch {batch.batch_id}: pixels have shape {pixels.shape}, not (n, 784)"
        )
    binds: list[ImageBind] = []
    for row in sorted(rows, key=lambda row: batch.image_ids[row]):
        label = int(batch.labels[row])
        binds.append((
            batch.image_ids[row],
            pixels[row].tobytes(),
            label if label >= 0 else None,
            int(batch.produced_at[row]),
            batch.batch_id,
        ))
    return binds


def offset_binds(group: str, offsets: Mapping[TopicPartitionKey, int]) -> list[OffsetBind]:
    """merge_offset parameters, in a stable order (fewer lock-order deadlocks between consumers)."""
    return [
        (group, topic, partition, int(offset))
        for (topic, partition), offset in sorted(offsets.items())
    ]


def scored_batch(
    image_ids: Sequence[str], rows: Sequence[tuple[Any, ...]], model: ModelRef, scored_at: int,
    conflicts: Sequence[str] = (),
) -> ScoredBatch:
    """select_predictions rows in the order of ``image_ids``; ``scored_at`` is this pass's time.

    ``conflicts`` (ids stored with other content) are left out. Any other id without a row
    is BackendUnavailable ``predictions-missing``: the batch is written again.
    """
    by_id = {str(row[0]): row for row in rows}
    if conflicts:
        skipped = set(conflicts)
        image_ids = [image_id for image_id in image_ids if image_id not in skipped]
    missing = [image_id for image_id in image_ids if image_id not in by_id]
    if missing:
        raise predictions_missing(missing, len(image_ids), model)
    ordered = [by_id[image_id] for image_id in image_ids]
    probabilities = np.frombuffer(b"".join(bytes(row[2]) for row in ordered), dtype="<f4")
    return ScoredBatch(
        image_ids=list(image_ids),
        predicted=np.array([int(row[1]) for row in ordered], dtype=np.int64),
        probabilities=probabilities.reshape(len(ordered), OUTPUTS).astype(np.float32),
        scored_at=np.full(len(ordered), scored_at, dtype=np.int64),
        model=model,
        conflicts=list(conflicts),
    )


# -- models -------------------------------------------------------------------------------

ModelBind = tuple[str, int, str, int, float, str, bytes | None]
LayerBind = tuple[str, int, int, int, int, str, bytes, bytes]


def full_manifest(artifact: ModelArtifact) -> dict[str, Any]:
    """The manifest as ModelArtifact.to_bytes writes it (name, version, layers, digest…)."""
    return artifact.manifest | {
        "name": artifact.name,
        "version": artifact.version,
        "activations": list(artifact.activations),
        "input_scale": artifact.input_scale,
        "layers": [layer.to_json() for layer in artifact.layers] if artifact.layered else artifact.layer_sizes,
        "sha256": artifact.sha256,
    }


def model_binds(artifact: ModelArtifact) -> tuple[ModelBind, list[LayerBind]]:
    """insert_model and insert_layer parameters: weights as row-major little-endian float32."""
    for index, weights in enumerate(artifact.weights):
        if weights.size > MAX_LAYER_ENTRIES:
            raise ArtifactError(
                f"layer {index} has {weights.size} weights; the Oracle scorer (UTL_NLA) takes "
                f"at most {MAX_LAYER_ENTRIES} per layer",
                reason="unsupported-shape",
            )
    canary = artifact.canary_pixels
    model: ModelBind = (
        artifact.name,
        artifact.version,
        artifact.sha256,
        len(artifact.weights),
        float(artifact.input_scale),
        json.dumps(full_manifest(artifact), sort_keys=True),
        None if canary is None else np.ascontiguousarray(canary, dtype=np.uint8).tobytes(),
    )
    layers: list[LayerBind] = [
        (
            artifact.name,
            artifact.version,
            index,
            int(w.shape[0]),
            int(w.shape[1]),
            activation,
            np.ascontiguousarray(b, dtype="<f4").tobytes(),
            np.ascontiguousarray(w, dtype="<f4").tobytes(),
        )
        for index, (w, b, activation) in enumerate(
            zip(artifact.weights, artifact.biases, artifact.activations, strict=True)
        )
    ]
    return model, layers


def artifact_from_rows(
    ref: ModelRef, model_row: Sequence[Any], layer_rows: Sequence[Sequence[Any]]
) -> ModelArtifact:
    """Rebuild an artifact from select_model / select_layers rows and verify its digest."""
    sha256, layer_count, input_scale, manifest_text, canary_bytes = model_row
    manifest = json.loads(manifest_text)
    if len(layer_rows) != int(layer_count):
        raise ArtifactError(
            f"{ref}: {len(layer_rows)} layer rows for {layer_count} layers", reason="bad-shape"
        )
    weights, biases, activations = [], [], []
    for layer_no, n_in, n_out, activation, bias_bytes, weight_bytes in layer_rows:
        w = np.frombuffer(bytes(weight_bytes), dtype="<f4")
        b = np.frombuffer(bytes(bias_bytes), dtype="<f4")
        if w.size != int(n_in) * int(n_out) or b.size != int(n_out):
            raise ArtifactError(f"{ref}: layer {layer_no} rows are truncated", reason="bad-shape")
        weights.append(w.reshape(int(n_in), int(n_out)).astype(np.float32))
        biases.append(b.astype(np.float32))
        activations.append(str(activation))
    if manifest.get("sha256") not in (None, sha256):
        raise ArtifactError(f"{ref}: manifest and row digests differ", reason="bad-digest")
    canary: npt.NDArray[np.uint8] | None = None
    if canary_bytes is not None:
        canary = np.frombuffer(bytes(canary_bytes), dtype=np.uint8).reshape(-1, INPUTS).copy()
    artifact = ModelArtifact(
        ref.name, ref.version, tuple(activations), float(input_scale),
        tuple(weights), tuple(biases), manifest, canary,
    )
    artifact.validate(expected_sha256=str(sha256))
    return artifact
