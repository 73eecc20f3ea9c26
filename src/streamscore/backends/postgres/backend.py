"""PostgreSQL backend: psycopg 3, COPY-binary ingest, scoring in PL/Python next to the data.

URL: ``postgresql://user[:password]@host[:port]/database[?option=value…]`` (``postgres://``
too). Options read here: ``schema`` (tables, function and search_path live there; created by
``init_schema``; default: the server's search_path). The libpq connection keywords go to libpq
(``sslmode``, ``connect_timeout`` (default 10 s), ``options``, ``application_name``…); any other
option is refused. A password may come from the URL or libpq's own PGPASSWORD/.pgpass, and is
never logged. The role predictions are stored under is the ModelRef's.

One batch is one transaction (``batches.py``, named statements of ``sql/postgres/batches.sql``). Fast path,
taken while every id is new: COPY the batch's distinct images (FORMAT BINARY, sorted by id)
straight into images inside a savepoint, score them with one call of the function
(``score_copied``), upsert the offsets, COMMIT. When an id is already stored the COPY fails
with a unique violation, the savepoint is rolled back and the batch takes the staging path:

1. COPY the batch's distinct images (FORMAT BINARY) into the session's temp table ss_incoming;
2. INSERT … SELECT … ON CONFLICT DO NOTHING RETURNING into images (replays are absorbed); only
   when some ids were not added, one statement compares them with the stored rows and removes
   the ids stored with other content (id-conflict) from the staging table;
3. INSERT … SELECT the predictions from ONE call of the PL/Python function
   ``streamscore_score_batch`` over the batch's not-yet-scored images (it caches the weights
   per model version in its session dictionary);
4. upsert the batch's next offsets per (topic, partition);
5. SELECT the batch's predictions back, then COMMIT.

``init_schema`` runs ``sql/postgres/schema.sql`` and (when its file changed) the function file
in one transaction under ``pg_advisory_xact_lock``, so N consumers starting together do not
collide; then it logs which BLAS the server's numpy uses (a warning for the reference BLAS,
``blas.py``). See docs/postgres.md.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg.types.json import Jsonb

from streamscore.backends.base import (
    Backend,
    ImageBatch,
    ModelRef,
    PurgeReport,
    ScoredBatch,
    ServingSet,
    TopicPartitionKey,
)
from streamscore.backends.checks import already_installed, check_purge_age, not_installed
from streamscore.backends.evaluation import Row
from streamscore.backends.postgres import batches
from streamscore.backends.postgres import errors as postgres_errors
from streamscore.backends.postgres import statements as q
from streamscore.backends.postgres.blas import report_blas
from streamscore.backends.url import BackendURL
from streamscore.errors import BackendError, ConfigError, ErrorKind
from streamscore.model.artifact import OUTPUTS, ModelArtifact
from streamscore.shared.procfs import rss_mb

log = logging.getLogger(__name__)


class PostgresBackend(Backend):
    """Images, predictions and offsets in PostgreSQL tables; scoring in PL/Python (numpy)."""

    schemes: ClassVar[tuple[str, ...]] = ("postgresql", "postgres")
    name: ClassVar[str] = "postgres"
    extra: ClassVar[str] = "postgres"
    transactional: ClassVar[bool] = True
    #: measured with the server on the consumer's two cores: installing ahead made the swap gap worse
    #: (2.2–4.2× against 1.8–2.1×; docs/decisions.md, "Installing ahead"); STREAMSCORE_INSTALL_AHEAD=true
    install_ahead: ClassVar[bool] = False
    concurrent_writers: ClassVar[bool] = True
    implements: ClassVar[frozenset[str]] = frozenset(
        {"drop-schema", "purge", "labeled-images", "multi-version", "lifecycle"})
    # classes alone do not tell a deadlock from a syntax error: classify() below uses SQLSTATEs
    retriable_errors: ClassVar[tuple[type[BaseException], ...]] = (
        psycopg.OperationalError, psycopg.InterfaceError,
    )
    data_errors: ClassVar[tuple[type[BaseException], ...]] = (psycopg.DataError, psycopg.IntegrityError)

    url_options: ClassVar[dict[str, str]] = {
        "schema": "schema of the tables and the scoring function (created by init_schema)",
        **{keyword: "libpq connection keyword" for keyword in q.LIBPQ_OPTIONS},
    }

    def __init__(self, url: BackendURL) -> None:
        super().__init__(url)
        self.schema = url.options.get("schema") or None
        self._conn: psycopg.Connection[Any] | None = None
        self._blas_reported = False

    # -- lifecycle -------------------------------------------------------------------------
    def connect(self) -> None:
        if self._conn is not None and not self._conn.closed and not self._conn.broken:
            return
        self.close()
        with self.translate_errors(f"connecting to {self.url.masked()}"):
            conn = psycopg.connect(q.conninfo(self.url), autocommit=True)
            try:
                if self.schema:
                    conn.execute(q.set_search_path(self.schema))
                conn.execute(q.statement("create_staging"))
            except BaseException:
                conn.close()
                raise
        self._conn = conn
        log.info("connected to %s", self.url.masked())

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _connection(self) -> psycopg.Connection[Any]:
        """The open connection; reopened here after it was lost."""
        self.connect()
        if self._conn is None:  # connect() sets it or raises; this keeps the type exact
            raise BackendError(f"no connection to {self.url.masked()}")
        return self._conn

    # -- errors ----------------------------------------------------------------------------
    def classify(self, exc: BaseException) -> ErrorKind:
        """By SQLSTATE (postgres_errors): the classes alone do not tell a deadlock from a typo."""
        return postgres_errors.classify(exc)

    def error_detail(self, exc: BaseException) -> str:
        return postgres_errors.detail(exc, self.url.password)

    def error_fix(self, exc: BaseException) -> str | None:
        return postgres_errors.fix(exc)

    def discard_broken_connection(self, exc: Exception) -> None:
        if self._conn is not None and (self._conn.broken or self._conn.closed):
            self.close()

    # -- schema ----------------------------------------------------------------------------
    def init_schema(self) -> None:
        with self.translate_errors("creating the schema"):
            conn = self._connection()
            with conn.transaction(), conn.cursor() as cursor:
                cursor.execute(q.statement("lock_schema_changes"), {"key": q.SCHEMA_LOCK_KEY})
                if self.schema:
                    cursor.execute(q.statement("schema_exists"), {"schema": self.schema})
                    if cursor.fetchone() is None:
                        cursor.execute(q.with_schema("create_schema", self.schema))
                for statement in q.schema_statements():
                    cursor.execute(statement)
                self._migrate_role_check(cursor)
                self._store_weights_uncompressed(cursor)
                self._install_function(cursor)
            if not self._blas_reported:  # once per backend: which BLAS the scorer's numpy runs on
                self._blas_reported = report_blas(conn) is not None

    @staticmethod
    def _store_weights_uncompressed(cursor: psycopg.Cursor[Any]) -> None:
        """Layer weights without pglz (new rows; set once, also on databases created before)."""
        cursor.execute(q.statement("select_weights_storage"))
        row = cursor.fetchone()
        if row is not None and str(row[0]) != "e":
            cursor.execute(q.statement("store_weights_uncompressed"))

    @staticmethod
    def _migrate_role_check(cursor: psycopg.Cursor[Any]) -> None:
        """Databases created before ensembles accept roles champion and shadow only: widen the check once."""
        cursor.execute(q.statement("select_role_check"))
        row = cursor.fetchone()
        if row is None or "ensemble" not in str(row[0]):
            cursor.execute(q.statement("drop_role_check"))
            cursor.execute(q.statement("add_role_check"))
            log.info("predictions now accept the roles member and ensemble")

    def _install_function(self, cursor: psycopg.Cursor[Any]) -> None:
        """CREATE OR REPLACE the PL/Python scorer only when its file changed (or it is missing)."""
        digest = q.function_digest()
        cursor.execute(q.statement("select_object_digest"),
                       {"name": q.FUNCTION_NAME, "signature": q.FUNCTION_SIGNATURE})
        row = cursor.fetchone()
        if row is not None and row[0] == digest:
            return
        cursor.execute(q.function_statement())
        cursor.execute(q.statement("upsert_object_digest"), {"name": q.FUNCTION_NAME, "sha256": digest})
        log.info("installed function %s (sha256 %s)", q.FUNCTION_NAME, digest[:12])

    def drop_schema(self) -> None:
        """DROP SCHEMA … CASCADE of the URL's ``schema`` option (scratch schemas of tests and bench)."""
        if not self.schema:
            raise ConfigError(f"{self.url.masked()} names no schema to drop: add ?schema=NAME")
        with self.translate_errors(f"dropping schema {self.schema}"):
            self._connection().execute(q.with_schema("drop_schema", self.schema))

    def purge(self, older_than_s: float) -> PurgeReport:
        """Images with ``ingested_at`` before now() - ``older_than_s`` and their predictions, one statement."""
        params = {"older_than_s": check_purge_age(older_than_s)}
        with self.translate_errors("purging old images"):
            conn = self._connection()
            with conn.transaction():
                row = conn.execute(q.statement("purge_older_than"), params).fetchone()
        images, predictions = row if row else (0, 0)
        return PurgeReport(int(images), int(predictions))

    def labeled_images(self) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
        """The training data of ``train --from-backend`` (see Backend.labeled_images)."""
        with self.translate_errors("reading the labeled images"):
            rows = self._connection().execute(q.statement("labeled_images")).fetchall()
        pixels = np.frombuffer(b"".join(bytes(p) for p, _ in rows), np.uint8).reshape(-1, 784).copy()
        return pixels, np.asarray([label for _, label in rows], np.uint8)

    def engine_benchmarks(self, images: int) -> dict[str, float]:
        """Ingest (COPY vs executemany) and scorer (PL/Python vs pure SQL) rates, in a scratch schema."""
        from streamscore.backends.postgres.bench import ingest_benchmark

        return ingest_benchmark(self.url, images)

    def memory_mb(self) -> float | None:
        """Resident memory of this connection's server process, when the server runs on this machine."""
        if self._conn is None or self._conn.closed:
            return None
        return rss_mb(int(self._conn.info.backend_pid))

    def cached_models(self) -> list[tuple[str, int]]:
        """The versions this connection's session holds in its GD (sql/postgres/score_batch.sql)."""
        with self.translate_errors("listing the session's cached models"):
            rows = self._connection().execute(q.statement("select_cached_models")).fetchall()
        return [(str(name), int(version)) for _, name, version in rows]

    def _select_named(self, names: tuple[str, ...]) -> list[list[Row]]:
        conn = self._connection()
        with conn.transaction():  # one read-only snapshot for all of them (REPEATABLE READ)
            conn.execute(q.statement("evaluation_snapshot"))
            return [conn.execute(q.statement(name)).fetchall() for name in names]

    # -- offsets ---------------------------------------------------------------------------
    def stored_offsets(self, group: str, topic: str) -> dict[int, int]:
        with self.translate_errors("reading stored offsets"):
            rows = self._connection().execute(
                q.statement("select_offsets"), {"group_id": group, "topic": topic}).fetchall()
        return {int(partition): int(offset) for partition, offset in rows}

    def store_offsets(self, group: str, offsets: dict[TopicPartitionKey, int]) -> None:
        if not offsets:
            return
        with self.translate_errors("storing offsets"):
            conn = self._connection()
            with conn.transaction():
                conn.execute(q.statement("upsert_offsets"), q.offset_params(group, offsets))

    # -- models ----------------------------------------------------------------------------
    def _install_model(self, artifact: ModelArtifact) -> None:
        head, layers = q.model_params(artifact)
        ref = ModelRef(artifact.name, artifact.version)
        with self.translate_errors(f"installing model {ref}"):
            conn = self._connection()
            with conn.transaction(), conn.cursor() as cursor:
                cursor.execute(q.statement("select_model_digest"), head)
                existing = cursor.fetchone()
                if already_installed(ref, None if existing is None else str(existing[0]), artifact):
                    return
                cursor.execute(q.statement("insert_model"), head | {"manifest": Jsonb(head["manifest"])})
                cursor.executemany(q.statement("insert_layer"), layers)
        log.info("installed model %s (%d layers)", ref, len(layers))

    def installed_versions(self, name: str) -> list[int]:
        with self.translate_errors(f"listing versions of model {name}"):
            rows = self._connection().execute(q.statement("select_versions"), {"name": name}).fetchall()
        return [int(version) for (version,) in rows]

    def load_model(self, ref: ModelRef) -> ModelArtifact:
        params = {"name": ref.name, "version": ref.version}
        with self.translate_errors(f"loading model {ref}"):
            conn = self._connection()
            head = conn.execute(q.statement("select_model_head"), params).fetchone()
            if head is None:
                raise not_installed(ref, self.schema or "the search_path schema")
            layers = conn.execute(q.statement("select_model_layers"), params).fetchall()
        return q.artifact_from_rows(ref, head, layers)

    def stored_lifecycle(self, name: str) -> tuple[int, str] | None:
        with self.translate_errors("reading the model lifecycle"):
            row = self._connection().execute(q.statement("select_lifecycle"), {"name": name}).fetchone()
        return None if row is None else (int(row[0]), str(row[1]))

    def store_lifecycle(self, name: str, revision: int, state: str) -> None:
        with self.translate_errors("storing the model lifecycle"):
            conn = self._connection()
            with conn.transaction():
                conn.execute(q.statement("upsert_lifecycle"), {"name": name, "revision": revision, "state": state})

    # -- scoring ---------------------------------------------------------------------------
    def write_batch(self, batch: ImageBatch, model: ModelRef, group: str) -> ScoredBatch:
        return self._write(batch, group, model, None)[0]

    def _write_set(self, batch: ImageBatch, serving: ServingSet, group: str) -> list[ScoredBatch]:
        """As write_batch, with every version scored by one statement (score_set) in the same transaction."""
        return self._write(batch, group, None, serving)

    def _write(self, batch: ImageBatch, group: str, model: ModelRef | None, serving: ServingSet | None
               ) -> list[ScoredBatch]:
        """One transaction (batches.py): images, scores of ``model`` or of every version of ``serving``, offsets."""
        unique = batches.unique_in_lock_order(batch)  # a repeated id is stored (and scored) once
        single = model or ModelRef("-", 0)
        with self.translate_errors(f"writing batch {batch.batch_id}"):
            stored, conflicts = batches.write(self._connection(), unique, batch.offsets, group, single, serving,
                                              self.timings)
        order = q.in_batch_order(unique.image_ids, conflicts)
        if serving is None:
            return [q.scored_batch(stored, single, order)]
        return q.scored_set(stored, serving, order)

    def score(self, pixels: npt.NDArray[np.uint8], model: ModelRef) -> npt.NDArray[np.float32]:
        """Probabilities from the PL/Python function; the transaction is rolled back."""
        if len(pixels) == 0:
            return np.zeros((0, OUTPUTS), np.float32)
        params = {
            "image_ids": [str(i) for i in range(len(pixels))],
            "pixels": [row.tobytes() for row in np.ascontiguousarray(pixels, np.uint8)],
            "name": model.name, "version": model.version,
        }
        with self.translate_errors(f"scoring {len(pixels)} images with {model}"):
            conn = self._connection()
            with conn.transaction(force_rollback=True), conn.cursor() as cursor:
                cursor.execute(q.statement("score_pixels"), params)
                rows = cursor.fetchall()
        rows.sort(key=lambda row: int(row[0]))
        return q.probabilities([row[1] for row in rows])
