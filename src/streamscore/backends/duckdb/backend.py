"""Embedded DuckDB backend: ``duckdb:///path/to.db`` (``duckdb:///:memory:`` for tests).

Options (URL query): ``scorer=udf|sql`` (default from STREAMSCORE_DUCKDB_SCORER);
``memory_limit=512MB`` caps DuckDB's buffer pool, which lives in the consumer's process and
keeps the pages it wrote (images, predictions, every model version's rows) until it nears the
limit (DuckDB's default: 80 % of the machine's memory; docs/operations.md, "Memory over many swaps");
``threads=N`` sets DuckDB's worker threads (default 1: small batches, measured; raise it for large
analytical queries such as ``evaluate --from-backend`` over millions of rows).
DuckDB allows one writing process per database file, so ``concurrent_writers`` is
False: scale out with one DuckDB file per consumer process, or use PostgreSQL.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, ClassVar

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa

from streamscore.backends.base import (
    Backend,
    ImageBatch,
    ModelRef,
    PurgeReport,
    ScoredBatch,
    ServingSet,
    TopicPartitionKey,
)
from streamscore.backends.checks import check_layers, check_purge_age
from streamscore.backends.duckdb import errors, models
from streamscore.backends.duckdb.connection import (
    CHECKPOINT_THRESHOLD,
    SWAP_CHECKPOINT_THRESHOLD,
    Deferral,
    Transaction,
    check_database_path,
    memory_config,
    open_database,
    second_connection,
    set_checkpoint_threshold,
    threads_config,
)
from streamscore.backends.duckdb.results import probabilities_of, scored_batch
from streamscore.backends.duckdb.scoring import (
    PinnedModels,
    arrow_batch,
    pixels_of,
    raw_column,
    register_udf,
    score_with_sql,
    score_with_udf,
)
from streamscore.backends.evaluation import Row
from streamscore.backends.model_cache import VersionCache
from streamscore.backends.sqlfiles import script, sql
from streamscore.backends.url import BackendURL
from streamscore.errors import BackendError, ConfigError, ErrorKind
from streamscore.model.artifact import ModelArtifact
from streamscore.shared.messages import now_ms
from streamscore.shared.timing import PhaseTimes

ENGINE = "duckdb"


class DuckDBBackend(Backend):
    schemes = ("duckdb",)
    name = "duckdb"
    extra = ""
    concurrent_writers = False
    retriable_errors: ClassVar[tuple[type[BaseException], ...]] = tuple(errors.RETRIABLE)
    data_errors: ClassVar[tuple[type[BaseException], ...]] = errors.DATA_ERRORS

    implements: ClassVar[frozenset[str]] = frozenset({"purge", "labeled-images", "multi-version", "lifecycle"})
    url_options: ClassVar[dict[str, str]] = {
        "scorer": "udf (default; STREAMSCORE_DUCKDB_SCORER) or sql: the in-database forward pass",
        "memory_limit": "cap of DuckDB's buffer pool in this process, e.g. 512MB (default: DuckDB's, 80 % of RAM)",
        "threads": "DuckDB's worker threads (default 1: a batch's statements are small; more for big queries)",
    }

    def __init__(self, url: BackendURL) -> None:
        super().__init__(url)
        self.scorer = url.options.get("scorer", "udf")
        if self.scorer not in ("udf", "sql"):
            raise ConfigError(f"duckdb scorer must be 'udf' or 'sql', not {self.scorer!r}")
        # duckdb:///relative.db, duckdb:////absolute/path.db, duckdb:///:memory:
        path = url.path[1:] if url.path.startswith("/") else url.path
        self.path = path or ":memory:"
        self.config = memory_config(url.options.get("memory_limit")) | threads_config(url.options.get("threads"))
        self._con: duckdb.DuckDBPyConnection | None = None
        #: checkpoints held off since a model install (connection.Deferral); set on the session's copy
        self._deferral, self._is_session = Deferral(), False
        self._models: VersionCache[tuple[str, int], ModelArtifact] = VersionCache()
        #: what the UDF reads, per statement (shared with this backend's sessions)
        self._pinned = PinnedModels()

    def classify(self, exc: BaseException) -> ErrorKind:
        return errors.classify(exc)

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            raise BackendError("the DuckDB backend is not connected; call connect() first")
        return self._con

    def connect(self) -> None:
        if self._con is not None:
            return
        if self.path != ":memory:":
            check_database_path(Path(self.path))
        with self.translate_errors(f"opening {self.path}"):
            self._con = open_database(self.path, self.config)
            self._deferral = Deferral()
            register_udf(self._con, self._pinned)

    def close(self) -> None:
        if self._con is not None:
            with contextlib.suppress(duckdb.Error):
                self._con.close()
            self._con = None

    def session(self) -> DuckDBBackend:
        """A second connection to this backend's database instance (see connection.second_connection)."""
        other = DuckDBBackend(self.url)
        with self.translate_errors(f"opening a second connection to {self.path}"):
            other._con = second_connection(self.con, self.path)
        other._pinned, other._deferral, other._is_session = self._pinned, self._deferral, True  # one instance
        return other

    def maintain(self) -> None:
        """A gap without a model swap: DuckDB may checkpoint again at the next commit that needs one."""
        if self._deferral.lift():
            with self.translate_errors("re-enabling checkpoints"):
                set_checkpoint_threshold(self.con, CHECKPOINT_THRESHOLD)

    def init_schema(self) -> None:
        with self.translate_errors("creating the schema"):
            self._migrate_pixel_lists()
            for statement in script(ENGINE, "schema.sql"):
                self.con.execute(statement.text)

    def _migrate_pixel_lists(self) -> None:
        """Files written before pixels became a BLOB keep UTINYINT[784]: convert them once."""
        kind = self.con.execute(sql(ENGINE, "pixels_column_type")).fetchall()
        if kind and kind[0][0] != "BLOB":
            with self._transaction():
                self.con.execute(sql(ENGINE, "migrate_pixels_to_blob"))

    def purge(self, older_than_s: float) -> PurgeReport:
        """Images with ``ingested_at`` before now - ``older_than_s`` and their predictions, one transaction."""
        older_than_us = round(check_purge_age(older_than_s) * 1_000_000)
        with self.translate_errors("purging old images"), self._transaction():
            (cutoff,) = self.con.execute(sql(ENGINE, "purge_cutoff"), {"older_than_us": older_than_us}).fetchall()[0]
            (predictions,) = self.con.execute(sql(ENGINE, "purge_predictions"), {"cutoff": cutoff}).fetchall()[0]
            (images,) = self.con.execute(sql(ENGINE, "purge_images"), {"cutoff": cutoff}).fetchall()[0]
        return PurgeReport(int(images), int(predictions))

    def labeled_images(self) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
        """The training data of ``train --from-backend`` (see Backend.labeled_images)."""
        with self.translate_errors("reading the labeled images"):
            rows = self._arrow(sql(ENGINE, "labeled_images"))
        if rows.num_rows == 0:
            return np.zeros((0, 784), np.uint8), np.zeros(0, np.uint8)
        pixels = pixels_of(rows.column("pixels").combine_chunks()).copy()
        return pixels, rows.column("label").to_numpy().astype(np.uint8)

    # -- offsets -----------------------------------------------------------------------------
    def _select_named(self, names: tuple[str, ...]) -> list[list[Row]]:
        return [list(self.con.execute(sql(ENGINE, name)).fetchall()) for name in names]

    def stored_offsets(self, group: str, topic: str) -> dict[int, int]:
        with self.translate_errors("reading stored offsets"):
            rows = self.con.execute(sql(ENGINE, "select_offsets"), {"group_id": group, "topic": topic}).fetchall()
        return {int(p): int(o) for p, o in rows}

    def _upsert_offsets(self, group: str, offsets: dict[TopicPartitionKey, int]) -> None:
        if not offsets:
            return
        keys = sorted(offsets)
        self.con.execute(sql(ENGINE, "upsert_offsets"), {
            "group_id": group, "topics": [t for t, _ in keys], "partitions": [p for _, p in keys],
            "next_offsets": [offsets[k] for k in keys],
        })

    def store_offsets(self, group: str, offsets: dict[TopicPartitionKey, int]) -> None:
        with self.translate_errors("storing offsets"), self._transaction():
            self._upsert_offsets(group, offsets)

    # -- models ------------------------------------------------------------------------------
    def _install_model(self, artifact: ModelArtifact) -> None:
        if self.scorer == "sql":
            check_layers(artifact, "the DuckDB SQL scorer (scorer=sql)")
        ref = ModelRef(artifact.name, artifact.version)
        with self.translate_errors(f"installing model {ref}"):
            set_checkpoint_threshold(self.con, SWAP_CHECKPOINT_THRESHOLD)  # until maintain(): no checkpoint
            self._deferral.installed(self._is_session)  # in the install nor in the new version's first batch
            with self._transaction():
                models.install(self.con, artifact)

    def installed_versions(self, name: str) -> list[int]:
        with self.translate_errors("listing models"):
            rows = self.con.execute(sql(ENGINE, "select_versions"), {"name": name}).fetchall()
        return [int(v) for (v,) in rows]

    def load_model(self, ref: ModelRef) -> ModelArtifact:
        with self.translate_errors(f"loading model {ref}"):
            head, rows = models.read(self.con, ref, self.path)
        return models.artifact_from_rows(ref, head, rows)

    def stored_lifecycle(self, name: str) -> tuple[int, str] | None:
        with self.translate_errors("reading the model lifecycle"):
            return models.stored_lifecycle(self.con, name)

    def store_lifecycle(self, name: str, revision: int, state: str) -> None:
        with self.translate_errors("storing the model lifecycle"), self._transaction():
            models.store_lifecycle(self.con, name, revision, state)

    def _model(self, ref: ModelRef) -> ModelArtifact:
        """Weights for the scorers, read from model_layers once per version (bounded: model_cache)."""
        return self._models.get(ref.key, lambda key: self.load_model(ModelRef(*key)))

    def cached_models(self) -> list[tuple[str, int]]:
        return self._models.keys()

    def memory_mb(self) -> float:
        """DuckDB's allocations in this process (buffer pool: written pages, model rows included)."""
        with self.translate_errors("reading DuckDB's memory use"):
            ((used,),) = self.con.execute(sql("duckdb", "memory_in_use")).fetchall()
        return float(used) / 1e6

    # -- scoring -----------------------------------------------------------------------------
    def _score_table(self, source: str, ref: ModelRef) -> None:
        model = self._model(ref)  # outside the UDF: loading runs queries on this connection
        if self.scorer == "udf":
            with self._pinned.pinned(ref, model):
                score_with_udf(self.con, source, ref)
        else:
            score_with_sql(self.con, source, model)

    def write_batch(self, batch: ImageBatch, model: ModelRef, group: str) -> ScoredBatch:
        """Images, then scores computed by DuckDB over the batch, then offsets: one transaction.

        Scoring reads the batch relation (not the whole images table) so the cost of a batch
        does not grow with the table; the primary keys absorb replays, and only the ids the
        insert did not add are compared with the stored rows (id-conflict).
        """
        return self._write(batch, (model,), group, ensemble=None)[0]

    def _write_set(self, batch: ImageBatch, serving: ServingSet, group: str) -> list[ScoredBatch]:
        """As write_batch, with every version of ``serving`` scored in the same transaction; an
        ensemble's mean is taken in SQL over the members' scores (statement ensemble_scores)."""
        refs = serving.served + serving.shadows
        return self._write(batch, refs, group, ensemble=serving.served_ref if serving.is_ensemble else None)

    def _write(self, batch: ImageBatch, refs: tuple[ModelRef, ...], group: str,
               ensemble: ModelRef | None) -> list[ScoredBatch]:
        rows = batch.unique_rows()
        unique = batch.subset(rows) if len(rows) < len(batch) else batch
        scored_at = now_ms()
        incoming = arrow_batch(unique, with_pixel_lists=self.scorer == "sql")
        conflicts: list[str] = []
        results: list[tuple[ModelRef, pa.Table]] = []
        # register/unregister outside the transaction: in an aborted one unregister fails and
        # would hide the real error (a rejected row would surface as a retriable TransactionException)
        with self.translate_errors(f"writing batch {batch.batch_id}"):
            self.con.register("ss_incoming", incoming)
            try:
                timed = self.timings.phase
                with self._transaction(timings=self.timings):
                    with timed("insert"):
                        added = self.con.execute(sql(ENGINE, "insert_images"), {"batch_id": batch.batch_id}).fetchall()
                        if len(added) < len(unique):
                            conflicts = self._conflicts(unique.image_ids, {i for (i,) in added})
                        if conflicts:
                            refused = set(conflicts)
                            keep = pa.array([i not in refused for i in unique.image_ids])
                            self.con.register("ss_incoming", incoming.filter(keep))
                    if ensemble is not None:
                        self.con.execute(sql(ENGINE, "create_member_scores"))
                    for ref in refs:
                        results += self._score_and_store(ref, batch.batch_id, scored_at)
                    if ensemble is not None:
                        with timed("score"):
                            self.con.execute(sql(ENGINE, "ensemble_scores"))
                        results.insert(0, (ensemble, self._store_predictions(ensemble, batch.batch_id, scored_at)))
                    with timed("offsets"):
                        self._upsert_offsets(group, batch.offsets)
            finally:
                self.con.unregister("ss_incoming")
        members = tuple(sorted(ref.version for ref in refs if ref.role == "member"))
        return [scored_batch(stored, ref, scored_at, conflicts, members if ref.role == "ensemble" else ())
                for ref, stored in results]

    def _score_and_store(self, ref: ModelRef, batch_id: str, scored_at: int) -> list[tuple[ModelRef, pa.Table]]:
        """Score ss_incoming with ``ref`` and store its rows; a member's scores go to ss_member_scores."""
        with self.timings.phase("score"):
            self._score_table("ss_incoming", ref)
        stored = self._store_predictions(ref, batch_id, scored_at)
        if ref.role == "member":
            self.con.execute(sql(ENGINE, "collect_member_scores"), {"version": ref.version})
            return []
        return [(ref, stored)]

    def _store_predictions(self, ref: ModelRef, batch_id: str, scored_at: int) -> pa.Table:
        with self.timings.phase("predictions"):
            self.con.execute(sql(ENGINE, "store_predictions"), {
                "name": ref.name, "version": ref.version, "role": ref.role, "scored_at": scored_at,
                "batch_id": batch_id,
            })
            return self._arrow(sql(ENGINE, "batch_predictions"))

    def _conflicts(self, image_ids: list[str], added: set[str]) -> list[str]:
        """Ids of the batch already stored with other pixels or label (in batch order)."""
        others = [i for i in image_ids if i not in added]
        found = {i for (i,) in self.con.execute(sql(ENGINE, "conflicting_ids"), {"ids": others}).fetchall()}
        return [i for i in others if i in found]

    def score(self, pixels: npt.NDArray[np.uint8], model: ModelRef) -> npt.NDArray[np.float32]:
        table = pa.table({
            "position": pa.array(np.arange(len(pixels))),
            "image_id": pa.array(np.arange(len(pixels))).cast(pa.string()),
            "pixels": pa.FixedSizeListArray.from_arrays(pa.array(pixels.reshape(-1), pa.uint8()), 784),
            "raw": raw_column(pixels),
        })
        with self.translate_errors(f"scoring with {model}"):
            self.con.register("ss_pixels", table)
            try:
                with self._transaction(commit=False):
                    if self.scorer == "udf":
                        with self._pinned.pinned(model, self._model(model)):  # loaded before the UDF runs
                            result = self._arrow(sql(ENGINE, "score_pixels_with_udf"),
                                                 {"name": model.name, "version": model.version})
                    else:
                        self._score_table("ss_pixels", model)
                        result = self._arrow(sql(ENGINE, "scores_in_input_order"))
            finally:
                self.con.unregister("ss_pixels")
        return probabilities_of(result.column("probabilities"))

    def _arrow(self, sql: str, params: dict[str, Any] | None = None) -> pa.Table:
        table: pa.Table = self.con.sql(sql, params=params).to_arrow_table()
        return table

    # -- transactions ------------------------------------------------------------------------
    def _transaction(self, commit: bool = True, timings: PhaseTimes | None = None) -> Transaction:
        return Transaction(self.con, commit, timings)
