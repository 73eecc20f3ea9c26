"""Kinetica backend: multi-head binary ingest, scoring in a distributed Python UDF.

URL: ``kinetica://user:password@host:9191`` with the options of ``url_options`` (any other is
refused). Without ``head_only=1``, connect probes the worker ranks' addresses and falls back to
head-only ingest, with a warning, when one is unreachable. Predictions are stored under the
ModelRef's role.

Kinetica has no multi-statement transactions (``transactional = False``), so
:meth:`KineticaBackend.write_batch` orders idempotent steps:

0. look the batch's ids up (primary key): an id stored with other pixels or label is an
   id-conflict, left out of every later step and reported in ``ScoredBatch.conflicts``;
1. upsert the images (primary key image_id, sharded on it): new ids, and replays re-tagged
   with this attempt's scoring id (same content);
2. insert the batch into ``score_inbox`` under the scoring id (fresh per call, so a retry never
   scores rows a failed attempt left) and run the inference UDF over that small table, with the
   weights in its params; each rank appends its predictions, carrying the model id, to
   ``prediction_stage`` on the same shard; the inbox rows are deleted after the run. The run's
   input is the batches in flight, never the images table: a batch costs the same at any size;
3. upsert the staged rows into ``predictions`` (key image + model + version + role)
   and delete them from the stage; read them back by primary key;
4. upsert the next offset per (topic, partition), never below the stored one (read first:
   an upsert alone would let a late replay rewind it).

A crash between any two steps leaves rows that the replay of the batch overwrites
with the same values, so the database converges.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import gpudb
import numpy as np
import numpy.typing as npt

from streamscore.backends.base import Backend, ImageBatch, ModelRef, ScoredBatch, ServingSet, TopicPartitionKey
from streamscore.backends.evaluation import Row
from streamscore.backends.kinetica import errors, models, procs, tables
from streamscore.backends.kinetica.client import request_timeout_s, unreachable_workers
from streamscore.backends.kinetica.serving import LOOKUP_CHUNK, write_batch, write_set
from streamscore.backends.model_cache import VersionCache
from streamscore.backends.url import BackendURL
from streamscore.errors import BackendError, ConfigError, ErrorKind
from streamscore.model.artifact import ModelArtifact
from streamscore.model.trainer import TrainConfig
from streamscore.shared.messages import now_ms

log = logging.getLogger(__name__)

#: staged rows older than this are leftovers of crashed runs (purged at init_schema)
STAGE_RETENTION_MS = 3_600_000


def _flag(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes", "on")


class KineticaBackend(Backend):
    """Stores images, predictions and offsets in Kinetica and scores with a distributed UDF."""

    schemes: ClassVar[tuple[str, ...]] = ("kinetica",)
    name: ClassVar[str] = "kinetica"
    extra: ClassVar[str] = "kinetica"
    transactional: ClassVar[bool] = False
    implements: ClassVar[frozenset[str]] = frozenset({"train", "lifecycle", "multi-version"})
    retriable_errors: ClassVar[tuple[type[BaseException], ...]] = errors.RETRIABLE_ERRORS
    #: rows are validated before they are sent (BackendDataError); a server-side
    #: rejection cannot be told apart from a schema fault, so it is fatal, not "data"
    data_errors: ClassVar[tuple[type[BaseException], ...]] = ()

    url_options: ClassVar[dict[str, str]] = {
        "https": "1 to talk HTTPS to the head node",
        "schema": "schema of the streamscore tables (default streamscore)",
        "head_only": "1 to post multi-head ingest to the head node only",
        "udf_timeout": "seconds to wait for one UDF run (default 120)",
        "timeout_ms": "HTTP request timeout of the client in ms (default 60000, 0 for none)",
    }

    def __init__(self, url: BackendURL) -> None:
        super().__init__(url)
        opts = url.options
        self.schema = tables.check_identifier(opts.get("schema", "streamscore"), "schema")
        scheme = "https" if _flag(opts.get("https")) else "http"
        self.head_url = f"{scheme}://{url.host or 'localhost'}:{url.port or 9191}"
        self.head_only = _flag(opts.get("head_only"))
        try:
            self.udf_timeout = float(opts.get("udf_timeout", "120"))
            self.timeout_ms = int(opts.get("timeout_ms", "60000"))
        except ValueError:
            raise ConfigError(f"{url.masked()}: udf_timeout and timeout_ms must be numbers") from None
        if self.timeout_ms < 0:
            raise ConfigError(f"{url.masked()}: timeout_ms must be 0 (no timeout) or more milliseconds")
        self._db: Any = None
        self._tables: dict[str, Any] = {}
        self._procs: dict[str, str] = {}
        self._weights: VersionCache[tuple[str, int], dict[str, str]] = VersionCache()  # UDF params per version

    # -- lifecycle -------------------------------------------------------------------------
    def client_options(self) -> Any:
        """The gpudb client's options for this URL (``timeout`` in seconds: see request_timeout_s)."""
        options = gpudb.GPUdb.Options()
        options.username = self.url.username or ""
        options.password = self.url.password or ""
        options.disable_auto_discovery = self.head_only
        options.timeout = request_timeout_s(self.timeout_ms)
        options.initial_connection_attempt_timeout = 0  # the consume loop does the retrying
        return options

    def connect(self) -> None:
        with self.translate_errors(f"connecting to {self.url.masked()}"):
            self._db = gpudb.GPUdb(host=self.head_url, options=self.client_options())
            unreachable = [] if self.head_only else unreachable_workers(self._db)
            if unreachable:
                log.warning("Kinetica worker rank(s) %s are not reachable from here: ingest goes through the "
                            "head node (set head_only=1 to skip this probe)", ", ".join(unreachable))
                self.head_only = True
                self._db = gpudb.GPUdb(host=self.head_url, options=self.client_options())
        log.info("connected to Kinetica at %s (schema %s)", self.url.masked(), self.schema)

    def close(self) -> None:
        self._db, self._tables, self._procs, self._weights = None, {}, {}, VersionCache()

    @property
    def db(self) -> Any:
        if self._db is None:
            raise BackendError("the Kinetica backend is not connected; call connect() first")
        return self._db

    def init_schema(self) -> None:
        with self.translate_errors("creating the schema"):
            for statement in tables.schema_statements(self.schema):
                self._execute(statement, [])
            self._execute_sql("purge_stage", [now_ms() - STAGE_RETENTION_MS])
            self._execute_sql("purge_inbox", [now_ms() - STAGE_RETENTION_MS])
            self._procs["infer"] = procs.register(self.db, procs.INFER_UDF, "distributed")

    def _select_named(self, names: tuple[str, ...]) -> list[list[Row]]:
        return [tables.select_in_schema(self.db, self.schema, name) for name in names]

    # -- offsets ---------------------------------------------------------------------------
    def stored_offsets(self, group: str, topic: str) -> dict[int, int]:
        with self.translate_errors("reading stored offsets"):
            return {int(p): int(o) for p, o in self._query("stored_offsets", [group, topic])}

    def store_offsets(self, group: str, offsets: dict[TopicPartitionKey, int]) -> None:
        if not offsets:
            return
        with self.translate_errors("storing offsets"):
            self._upsert_offsets(group, offsets)

    def stored_lifecycle(self, name: str) -> tuple[int, str] | None:
        return models.stored_lifecycle(self, name)

    def store_lifecycle(self, name: str, revision: int, state: str) -> None:
        """Read, then upsert when higher (models.store_lifecycle: no conditional upsert in Kinetica)."""
        models.store_lifecycle(self, name, revision, state)

    # -- models ----------------------------------------------------------------------------
    def _install_model(self, artifact: ModelArtifact) -> None:
        models.install(self, artifact)

    def installed_versions(self, name: str) -> list[int]:
        with self.translate_errors("listing installed models"):
            return [int(row[0]) for row in self._query("installed_versions", [name])]

    def load_model(self, ref: ModelRef) -> ModelArtifact:
        return models.load(self, ref)

    # -- scoring ---------------------------------------------------------------------------
    def write_batch(self, batch: ImageBatch, model: ModelRef, group: str) -> ScoredBatch:
        """The numbered steps of the module doc, in serving.write_batch."""
        return write_batch(self, batch, model, group)

    def _write_set(self, batch: ImageBatch, serving: ServingSet, group: str) -> list[ScoredBatch]:
        """Every version's predictions, then an ensemble's mean in the database, then offsets (serving.py)."""
        return write_set(self, batch, serving, group)

    def score(self, pixels: npt.NDArray[np.uint8], model: ModelRef) -> npt.NDArray[np.float32]:
        if len(pixels) == 0:
            return np.zeros((0, tables.CLASSES), np.float32)
        scratch = f"score-{uuid.uuid4().hex}"
        inbox = tables.pixel_records(pixels, scratch, now_ms())
        with self.translate_errors(f"scoring {len(inbox)} images with {model}"):
            weights = self._model_params(model)
            try:
                self._score(inbox, scratch, model, weights)
                staged = {str(r[0]): r[1:] for r in self._query("select_stage", [scratch])}
            finally:
                self._execute_sql("delete_stage", [scratch])
        missing = [i for i in range(len(inbox)) if f"{scratch}/{i}" not in staged]
        if missing:
            raise BackendError(f"the UDF returned no probabilities for {len(missing)} images")
        return np.asarray([staged[f"{scratch}/{i}"] for i in range(len(inbox))], np.float32)

    # -- training in the database ---------------------------------------------------------
    def train_model(self, config: TrainConfig, mnist_dir: Path | None = None) -> ModelArtifact:
        """The training UDF over ``training_images`` (see train.py); the model is installed.
        ``config.version`` 0 (train.NEXT_VERSION, the CLI's default) trains the next version."""
        from streamscore.backends.kinetica.train import train_in_database

        return train_in_database(
            self, steps=config.steps, version=config.version, name=config.name, hidden=config.hidden,
            batch_size=config.batch_size, learning_rate=config.learning_rate, seed=config.seed,
            mnist_dir=mnist_dir,
        )

    # -- errors ----------------------------------------------------------------------------
    def classify(self, exc: BaseException) -> ErrorKind:
        return errors.classify(exc)

    def error_fix(self, exc: BaseException) -> str | None:
        if isinstance(exc, gpudb.GPUdbUnauthorizedAccessException):
            return f"kinetica refused the credentials: check the user and password of {self.url.masked()}"
        return None

    # -- helpers ---------------------------------------------------------------------------
    def _model_params(self, model: ModelRef) -> dict[str, str]:
        """The UDF's weights params of an installed version (read and verified once per connection:
        installed weights never change; bounded: model_cache); ArtifactError not-installed before the UDF runs."""
        return self._weights.get(model.key, lambda key: tables.weights_params(self.load_model(ModelRef(*key))))

    def cached_models(self) -> list[tuple[str, int]]:
        return self._weights.keys()

    def execute_statement(self, statement: str, params: list[Any]) -> int:
        """One statement of sql/kinetica (filled by tables.sql) with its binds (for serving.py)."""
        return self._execute(statement, params)

    def stored_predictions(self, ids: list[str], selector: list[Any]) -> list[list[Any]]:
        """The predictions of ``ids`` for this scoring id, model and role (primary-key lookups)."""
        stored: list[list[Any]] = []
        for start in range(0, len(ids), LOOKUP_CHUNK):
            stored.extend(self._query("select_predictions", selector, ids[start:start + LOOKUP_CHUNK]))
        return stored

    def _upsert_offsets(self, group: str, offsets: dict[TopicPartitionKey, int]) -> None:
        """Upsert next offsets, never below the stored ones (Kinetica has no GREATEST upsert)."""
        forward = dict(offsets)
        for topic in {topic for topic, _ in offsets}:
            for partition, stored in self._query("stored_offsets", [group, topic]):
                key = (topic, int(partition))
                if key in forward and int(stored) > forward[key]:
                    forward[key] = int(stored)
        records = tables.offset_records(group, forward, now_ms())
        tables.check_offsets_fit(records)
        self._upsert("consumer_offsets", records)

    def _score(self, inbox: list[list[Any]], scoring_id: str, model: ModelRef, weights: dict[str, str]) -> None:
        """Put ``inbox`` rows into score_inbox, run the inference UDF over them into the stage and
        take them out again (also when the run failed; leftovers of a crash are purged by age)."""
        name = self._procs.get("infer") or procs.register(self.db, procs.INFER_UDF, "distributed")
        self._procs["infer"] = name
        self._upsert("score_inbox", inbox)
        try:
            procs.infer(
                self.db, name, schema=self.schema, scoring_id=scoring_id, weights=weights,
                model={"model_name": model.name, "model_version": str(model.version), "role": model.role},
                expected=len(inbox), timeout=self.udf_timeout,
            )
        except BaseException:
            with contextlib.suppress(Exception):
                self._execute_sql("delete_inbox", [scoring_id])
            raise
        self._execute_sql("delete_inbox", [scoring_id])

    def _table(self, name: str) -> Any:
        if name not in self._tables:
            self._tables[name] = gpudb.GPUdbTable(
                None, name=f"{self.schema}.{name}", db=self.db,
                use_multihead_ingest=True, flush_multi_head_ingest_per_insertion=False,
            )
        return self._tables[name]

    def _upsert(self, name: str, records: Sequence[Sequence[Any]]) -> None:
        """Multi-head binary insert, overwriting rows with the same primary key."""
        if not records:
            return
        table = self._table(name)
        try:
            table.insert_records([list(r) for r in records], options={"update_on_existing_pk": "true"})
            table.flush_data_to_server()
        except BaseException:
            # a failed flush leaves the other workers' queues filled: never send those
            # leftovers with a later call, start over with a fresh ingestor
            self._tables.pop(name, None)
            raise

    def _query(self, name: str, params: list[Any], ids: Sequence[str] = ()) -> list[list[Any]]:
        """Rows of the named statement; ``ids`` fill its ``{ids}`` list, bound after ``params``."""
        statement = tables.sql(name, self.schema, len(ids), first=len(params) + 1)
        with self.db.query(statement, sql_params=[*params, *ids]) as rows:
            return [list(row) for row in rows]

    def _execute_sql(self, name: str, params: list[Any]) -> int:
        return self._execute(tables.sql(name, self.schema), params)

    def _execute(self, statement: str, params: list[Any]) -> int:
        # Always a fresh sql_opts: GPUdb.execute() writes "query_parameters" into the
        # dict it is given, and its default is one shared mutable {} -- a later call
        # without parameters would send the previous call's binds with it.
        return int(self.db.execute(statement, sql_params=list(params), sql_opts={}))


