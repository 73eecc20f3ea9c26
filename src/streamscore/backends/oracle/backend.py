"""Oracle backend: python-oracledb thin mode, scoring in the PL/SQL package MNIST_SCORER.

URL: ``oracle://user[:password]@host[:port]/service[?option=value…]``, e.g.
``oracle://streamscore@localhost:1521/FREEPDB1``. The password comes from the URL or
from ``STREAMSCORE_ORACLE_PASSWORD`` (read at connect time); it is never logged.
URL options: ``protocol`` (tcp|tcps), ``tcp_connect_timeout`` (s), ``expire_time``
(min), ``retry_count``, ``retry_delay`` (s), ``call_timeout`` (ms), ``plsql_timing`` (1: log
the scorer's CPU time per phase after each batch), ``onnx`` (1: Oracle 23ai's ONNX runtime
instead of the PL/SQL scorer, ``onnx_scorer``; never run here); any other is refused.
Constructor keyword: ``native_plsql`` (compile the package natively, default True).
The role predictions are stored under is the ModelRef's.

One batch is one transaction (DDL never runs inside it):

1. INSERT the images, sorted by id, with ``executemany(batcherrors=True)`` (``ingest``): an id
   stored already fails its row with ORA-00001 and is left as first written; those ids are
   compared with the stored rows in one join, and the ones with other content are id-conflicts;
   any other row error rolls back (each row's error classified: bad data, outage or fatal);
2. put the batch's ids (conflicts left out) in ``mnist_batch_ids``, a global temporary table;
3. MERGE the batch's next offsets per (topic, partition);
4. call ``mnist_scorer.score_staged`` once: it scores every image of ``mnist_batch_ids`` without
   a prediction in the database (UTL_NLA.BLAS_GEMM per layer) and inserts the predictions;
5. SELECT the batch's predictions back (an id without one is predictions-missing); commit.

The user and its rights come from ``sql/oracle/00_create_user.sql`` (for a DBA);
tables and package from ``init_schema``. See docs/oracle.md.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import oracledb

from streamscore.backends.base import Backend, ImageBatch, ModelRef, PurgeReport, ScoredBatch, TopicPartitionKey
from streamscore.backends.checks import check_layers, check_purge_age
from streamscore.backends.evaluation import Row
from streamscore.backends.oracle import errors as oracle_errors
from streamscore.backends.oracle import ingest, models, onnx_scorer
from streamscore.backends.oracle import package as oracle_package
from streamscore.backends.oracle import statements as oracle_sql
from streamscore.backends.sqlfiles import script
from streamscore.backends.url import BackendURL
from streamscore.errors import BackendError, ConfigError, ErrorKind
from streamscore.model.artifact import OUTPUTS, ModelArtifact
from streamscore.shared.messages import now_ms

log = logging.getLogger(__name__)


class OracleBackend(Backend):
    """Images, predictions and offsets in Oracle tables; scoring in PL/SQL with UTL_NLA."""

    schemes: ClassVar[tuple[str, ...]] = ("oracle",)
    name: ClassVar[str] = "oracle"
    extra: ClassVar[str] = "oracle"
    transactional: ClassVar[bool] = True
    concurrent_writers: ClassVar[bool] = True
    # The classes alone cannot tell a deadlock from a syntax error: translate_errors
    # below classifies by ORA/DPY code (oracle_errors); these are the usual carriers.
    retriable_errors: ClassVar[tuple[type[BaseException], ...]] = (
        oracledb.OperationalError, oracledb.InterfaceError,
    )
    data_errors: ClassVar[tuple[type[BaseException], ...]] = (
        oracledb.IntegrityError, oracledb.DataError,
    )

    implements: ClassVar[frozenset[str]] = frozenset({"purge", "lifecycle"})
    url_options: ClassVar[dict[str, str]] = oracle_sql.URL_OPTION_HELP

    def __init__(self, url: BackendURL, *, native_plsql: bool = True) -> None:
        super().__init__(url)
        self.native_plsql = native_plsql
        self._target = oracle_sql.parse_target(url)
        self._conn: oracledb.Connection | None = None
        self._active: dict[str, int] = {}  # model name → version last written to active_models
        self._timing_on = False  # set_timing(1) ran in this session (plsql_timing=1)
        self._onnx = False  # scorer=onnx and the server has in-database ONNX (checked at connect)
        self._onnx_loaded: set[tuple[str, int]] = set()

    # -- lifecycle -------------------------------------------------------------------------
    def connect(self) -> None:
        if self._conn is not None:
            return
        password = oracle_sql.resolve_password(self.url, os.environ)
        with self.translate_errors(f"connecting to {self.url.masked()}"):
            conn = oracledb.connect(
                user=self._target.user, password=password, dsn=self._target.dsn,
                **self._target.connect_options,
            )
            conn.call_timeout = self._target.call_timeout_ms
            conn.module = "streamscore"
        self._conn = conn
        self._active.clear()
        self._timing_on = False
        self._onnx_loaded.clear()
        self._onnx = self._target.onnx and onnx_scorer.supports_onnx(str(conn.version))
        if self._target.onnx and not self._onnx:
            log.warning("scorer=onnx needs Oracle 23ai or later; %s runs %s: scoring with the PL/SQL "
                        "scorer instead", self.url.masked(), conn.version)
        log.info("connected to %s", self.url.masked())

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _connection(self) -> oracledb.Connection:
        """The open connection; reopened here after the session was lost."""
        if self._conn is None:
            self.connect()
        if self._conn is None:  # connect() sets it or raises; this keeps the type exact
            raise BackendError(f"no connection to {self.url.masked()}")
        return self._conn

    def _rollback(self) -> None:
        if self._conn is not None:
            try:
                self._conn.rollback()
            except oracledb.Error:
                self.close()  # the session is gone; the next call reconnects

    @contextlib.contextmanager
    def _committing(self) -> Iterator[oracledb.Connection]:
        """The connection, committed at the end; rolled back (a dead session dropped) on any error."""
        conn = self._connection()
        try:
            yield conn
            conn.commit()
        except BaseException:
            self._rollback()
            raise

    def classify(self, exc: BaseException) -> ErrorKind:
        """By ORA/DPY code (oracle_errors): the classes alone do not tell a deadlock from a typo."""
        return oracle_errors.classify(exc)

    def error_fix(self, exc: BaseException) -> str | None:
        return oracle_errors.fix(exc)

    def discard_broken_connection(self, exc: Exception) -> None:
        if isinstance(exc, oracledb.Error) and oracle_errors.is_dead_session(exc):
            self.close()

    # -- schema ----------------------------------------------------------------------------
    def init_schema(self) -> None:
        with self.translate_errors("creating the schema"):
            conn = self._connection()
            with conn.cursor() as cursor:
                for statement in script("oracle", oracle_sql.SCHEMA_FILE):
                    try:
                        cursor.execute(statement.text)
                    except oracledb.DatabaseError as exc:
                        if oracle_errors.error_codes(exc)[0] not in oracle_sql.ALREADY_EXISTS_CODES:
                            raise
                oracle_package.install(conn, cursor, native=self.native_plsql)

    def purge(self, older_than_s: float, rows_per_commit: int = 10_000) -> PurgeReport:
        """Delete images inserted more than ``older_than_s`` seconds ago and their predictions.

        Commits every ``rows_per_commit`` images (mnist_scorer.purge), so a large purge holds no
        long transaction. Offsets and models stay: a purged image is not consumed again.
        """
        check_purge_age(older_than_s)
        if rows_per_commit < 1:
            raise ConfigError(f"purge: the chunk must be 1 row or more, not {rows_per_commit}")
        with self.translate_errors("purging old images"), self._connection().cursor() as cursor:
            images, predictions = cursor.var(int), cursor.var(int)
            cursor.callproc(oracle_sql.PURGE_PROCEDURE, [older_than_s, images, predictions, rows_per_commit])
            return PurgeReport(int(images.getvalue() or 0), int(predictions.getvalue() or 0))

    def _select_named(self, names: tuple[str, ...]) -> list[list[Row]]:
        with self._connection().cursor() as cursor:
            found: list[list[Row]] = []
            for name in names:
                cursor.execute(oracle_sql.statement(name))
                found.append(cursor.fetchall())
            return found

    # -- offsets ---------------------------------------------------------------------------
    def stored_offsets(self, group: str, topic: str) -> dict[int, int]:
        with self.translate_errors("reading stored offsets"), self._connection().cursor() as cursor:
            cursor.execute(oracle_sql.statement("select_offsets"), [group, topic])
            return {int(partition): int(offset) for partition, offset in cursor.fetchall()}

    def store_offsets(self, group: str, offsets: dict[TopicPartitionKey, int]) -> None:
        if not offsets:
            return
        with self.translate_errors("storing offsets"), self._committing() as conn, conn.cursor() as cursor:
            cursor.executemany(oracle_sql.statement("merge_offset"), oracle_sql.offset_binds(group, offsets))

    def stored_lifecycle(self, name: str) -> tuple[int, str] | None:
        with self.translate_errors("reading the model lifecycle"), self._connection().cursor() as cursor:
            return models.read_lifecycle(cursor, name)

    def store_lifecycle(self, name: str, revision: int, state: str) -> None:
        with self.translate_errors("storing the model lifecycle"), self._committing() as conn, conn.cursor() as cursor:
            models.write_lifecycle(cursor, name, revision, state)

    # -- models ----------------------------------------------------------------------------
    def _install_model(self, artifact: ModelArtifact) -> None:
        ref = ModelRef(artifact.name, artifact.version)
        with self.translate_errors(f"installing model {ref}"):
            conn = self._connection()
            if not self._onnx:  # known once connected: scorer=onnx on a server that runs ONNX
                check_layers(artifact, "the Oracle PL/SQL scorer (scorer=plsql)")
            try:
                with conn.cursor() as cursor:
                    layers = models.insert(cursor, artifact)
                if layers is None:  # installed already, same weights: nothing to commit
                    return
                conn.commit()
            except BaseException:
                self._rollback()
                raise
        log.info("installed model %s (%d layers)", ref, layers)

    def installed_versions(self, name: str) -> list[int]:
        action = f"listing versions of model {name}"
        with self.translate_errors(action), self._connection().cursor() as cursor:
            cursor.execute(oracle_sql.statement("select_versions"), [name])
            return [int(version) for (version,) in cursor.fetchall()]

    def load_model(self, ref: ModelRef) -> ModelArtifact:
        with self.translate_errors(f"loading model {ref}"), self._connection().cursor() as cursor:
            model_row, layer_rows = models.read(cursor, ref, self.url.masked())
        return oracle_sql.artifact_from_rows(ref, model_row, layer_rows)

    # -- scoring ---------------------------------------------------------------------------
    def write_batch(self, batch: ImageBatch, model: ModelRef, group: str) -> ScoredBatch:
        rows = batch.unique_rows()  # a repeated id is stored (and scored) once
        image_ids = [batch.image_ids[row] for row in rows]
        scored_at = now_ms()
        self._ensure_onnx_model(model)  # DDL when new: before the batch's transaction
        with self.translate_errors(f"writing batch {batch.batch_id}"), self._committing() as conn, \
                conn.cursor() as cursor:
            conflicts, to_score = ingest.stage_batch(cursor, oracle_sql.image_binds(batch, rows))
            if batch.offsets:
                cursor.executemany(oracle_sql.statement("merge_offset"), oracle_sql.offset_binds(group, batch.offsets))
            fetched = self._score_and_fetch(cursor, model, len(to_score)) if to_score else []
            # after scoring: a missing model fails there first, with ORA-20001 (fatal),
            # not here with a foreign-key error the loop would take for bad rows
            switched = bool(to_score) and self._activate(cursor, model)
        if switched:
            self._active[model.name] = model.version
        return oracle_sql.scored_batch(image_ids, fetched, model, scored_at, conflicts)

    def score(self, pixels: npt.NDArray[np.uint8], model: ModelRef) -> npt.NDArray[np.float32]:
        """Stage the images under scratch ids, score them in PL/SQL, roll everything back."""
        if len(pixels) == 0:
            return np.zeros((0, OUTPUTS), dtype=np.float32)
        scratch = f"score-{uuid.uuid4().hex}"
        batch = ImageBatch(
            scratch, [f"{scratch}-{i}" for i in range(len(pixels))], pixels,
            np.full(len(pixels), -1, dtype=np.int16), np.zeros(len(pixels), dtype=np.int64), [],
        )
        self._ensure_onnx_model(model)
        with self.translate_errors(f"scoring {len(pixels)} images with {model}"):
            conn = self._connection()
            try:
                with conn.cursor() as cursor:
                    ingest.insert_images(cursor, oracle_sql.image_binds(batch, range(len(pixels))))
                    ingest.stage_batch_ids(cursor, batch.image_ids)
                    fetched = self._score_and_fetch(cursor, model, len(pixels))
            finally:
                self._rollback()  # nothing of this call is kept
        return oracle_sql.scored_batch(batch.image_ids, fetched, model, 0).probabilities

    def _activate(self, cursor: oracledb.Cursor, model: ModelRef) -> bool:
        """Record the serving version in active_models when it changed (same transaction).

        Only the champion does: a shadow consumer scoring a candidate version must not
        flip the row that names the version being served (score_staged's NULL default).
        """
        if model.role != "champion" or self._active.get(model.name) == model.version:
            return False
        cursor.execute(oracle_sql.statement("merge_active"), [model.name, model.version])
        return True

    def _ensure_onnx_model(self, model: ModelRef) -> None:
        """scorer=onnx: load the version into the database's ONNX runtime once (DDL: commits)."""
        if not self._onnx or (model.name, model.version) in self._onnx_loaded:
            return
        artifact = self.load_model(ModelRef(model.name, model.version))  # not-installed when absent
        with self.translate_errors(f"loading {model} into the ONNX runtime"), self._connection().cursor() as cursor:
            onnx_scorer.ensure_loaded(cursor, model, artifact)
        self._onnx_loaded.add((model.name, model.version))

    def _score_and_fetch(self, cursor: oracledb.Cursor, model: ModelRef, expected: int) -> list[Any]:
        """One call scores mnist_batch_ids; retried once after ORA-04068 (package recompiled)."""
        arguments = [model.name, model.version, model.role]
        if self._onnx:
            onnx_scorer.score(cursor, model, now_ms())  # no package state to lose
        else:
            timed = self._target.plsql_timing
            if timed and not self._timing_on:
                cursor.callproc(oracle_sql.SET_TIMING_PROCEDURE, [1])  # debug: counters from zero
                self._timing_on = True
            oracle_package.score_staged(cursor, arguments)
        # one round trip for the whole batch (the default arraysize is 100)
        cursor.arraysize = cursor.prefetchrows = max(expected, 1)
        cursor.execute(oracle_sql.statement("select_predictions"), arguments)
        fetched = list(cursor.fetchall())
        if self._target.plsql_timing and not self._onnx:
            self._log_timings(cursor)
        return fetched

    @staticmethod
    def _log_timings(cursor: oracledb.Cursor) -> None:
        """Debug (plsql_timing=1): the scorer's CPU time per phase, summed over this session."""
        timings = cursor.callfunc(oracle_sql.TIMINGS_FUNCTION, oracledb.DB_TYPE_VARCHAR)
        log.info("mnist_scorer CPU time (1/100 s, this session): %s", timings)

