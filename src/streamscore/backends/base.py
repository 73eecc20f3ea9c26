"""The Backend contract every database engine implements.

A backend owns one database connection. The consume loop hands it one
:class:`ImageBatch` at a time and the model version to score it with; the backend

1. inserts the images (idempotent on image id: replays are absorbed),
2. scores them *inside the database* with exactly that one model version,
3. stores the predictions (idempotent on image id + model + version + role),
4. stores the next offset of every (topic, partition) in the batch,

all in one transaction when ``transactional`` is true. Engines without
multi-statement transactions (Kinetica) set ``transactional = False`` and make
every step idempotent and ordered (images, predictions, offsets) so replay after
a crash at any point converges to the same rows.

Predictions are stored under ``ModelRef.role`` (champion or shadow), shown on the evaluation topic.
``ScoredBatch.scored_at`` means the same on every engine: the epoch ms at which *this*
``write_batch`` call started, for every row, replayed images included (the stored row keeps the
time it was first scored).

Several versions per batch (model lifecycle, docs/decisions.md): :meth:`Backend.write_set` scores one
batch with a :class:`ServingSet` — one champion or an ensemble of members, plus shadows — on engines
that implement "multi-version": in one database call and transaction (DuckDB, PostgreSQL), or in
ordered idempotent steps with the offsets last (Kinetica). Every version's rows are stored under its
own version and role, and an ensemble's served probabilities are the mean of the members' computed
by the database (role "ensemble", newest member's version). It returns the served ScoredBatch first,
then one per shadow. Other engines (Oracle) get the fallback below (one write per version, shadows
first and without offsets, so that a crash between the writes replays the batch), which refuses
ensembles.

Models: ``install_model`` checks the name against :data:`MAX_MODEL_NAME_BYTES` (every engine's
column holds that much), is a no-op for a version already installed with the same weights and
refuses one installed with different weights (``ArtifactError`` reason ``version-conflict``).
Scoring with a version that is not installed raises ``ArtifactError`` reason ``not-installed``.

Image ids are unique: an id already stored with different content (pixels or label) is not
stored, scored or overwritten; ``write_batch`` lists it in ``ScoredBatch.conflicts`` and the loop
dead-letters it (reason ``id-conflict``); a replay (same id, same content) is absorbed.

Offsets never move backwards: a late replay of an old batch cannot rewind the stored offset.

Predictions missing after scoring (another consumer moved the rows in a rebalance race) raise
``BackendUnavailable`` reason ``predictions-missing``: the loop retries the batch (and stops
after a few repeats), it never dead-letters or drops it.

Evaluation: :meth:`Backend.evaluation` and :meth:`Backend.misclassified` run the named statements
of ``sql/<engine>/evaluation.sql`` (plain SQL a DBA can paste into the engine's console; no binds,
no substitution) over the served predictions and the labels stored with the images.

Errors: a backend raises :class:`BackendUnavailable` for outages (the loop pauses
and retries), :class:`BackendDataError` when rows are rejected for a data reason
(the loop bisects the batch and dead-letters the bad rows), and
:class:`BackendError` for permanent faults (the consumer stops with the message).
:meth:`Backend.classify` says which is which (an :class:`ErrorKind` with a reason and a
retry delay; by default from the ``retriable_errors`` and ``data_errors`` classes, engines
override it with their error codes) and :meth:`Backend.translate` builds the error from it.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from streamscore.backends.checks import check_model_name, describe
from streamscore.backends.evaluation import DatabaseEvaluation, Misclassified, Row
from streamscore.backends.records import (
    MAX_MODEL_NAME_BYTES,
    ROLES,
    ImageBatch,
    ModelRef,
    PurgeReport,
    ScoredBatch,
    ServingSet,
    SourceOffset,
    TopicPartitionKey,
)
from streamscore.backends.url import BackendURL
from streamscore.errors import (
    ArtifactError,
    BackendDataError,
    BackendError,
    BackendUnavailable,
    ConfigError,
    ErrorKind,
    StreamscoreError,
)
from streamscore.model.artifact import ModelArtifact
from streamscore.model.trainer import TrainConfig
from streamscore.shared.timing import PhaseTimes

__all__ = ["MAX_MODEL_NAME_BYTES", "ROLES", "Backend", "ImageBatch", "ModelRef", "PurgeReport", "ScoredBatch",
           "ServingSet", "SourceOffset", "TopicPartitionKey", "describe"]


class Backend(ABC):
    """One database connection that stores, scores and remembers offsets."""

    #: URL schemes that select this backend
    schemes: ClassVar[tuple[str, ...]] = ()
    name: ClassVar[str] = ""  #: short name written into every prediction's "backend" field
    extra: ClassVar[str] = ""  #: pip extra that installs the driver
    #: whether the scorer installs new model versions ahead on a :meth:`session` (STREAMSCORE_INSTALL_AHEAD)
    install_ahead: ClassVar[bool] = True
    #: True when one batch (images, predictions, offsets) commits atomically
    transactional: ClassVar[bool] = True
    #: True when several consumer processes may write to one database at once
    concurrent_writers: ClassVar[bool] = True
    #: driver exceptions that mean "outage, retry later"
    retriable_errors: ClassVar[tuple[type[BaseException], ...]] = ()
    #: driver exceptions that mean "these rows are bad" (bisect and dead-letter)
    data_errors: ClassVar[tuple[type[BaseException], ...]] = ()

    #: optional capabilities beyond the contract: "train" (:meth:`train_model`), "drop-schema"
    #: (:meth:`drop_schema`), "purge" (:meth:`purge`), "labeled-images" (:meth:`labeled_images`),
    #: "multi-version" (:meth:`write_set` in one transaction, ensembles), "lifecycle"
    #: (:meth:`stored_lifecycle`); callers ask ``"train" in backend.implements``
    #: instead of a URL prefix
    implements: ClassVar[frozenset[str]] = frozenset()
    #: URL query options this engine reads (name → what it does); any other option is refused
    url_options: ClassVar[Mapping[str, str]] = {}

    def __init__(self, url: BackendURL) -> None:
        unknown = sorted(set(url.options) - set(self.url_options))
        if unknown:
            valid = ", ".join(sorted(self.url_options)) or "none"
            raise ConfigError(
                f"unknown option(s) {', '.join(unknown)} in backend URL {url.masked()!r}; "
                f"valid options for {url.scheme}: {valid}"
            )
        self.url = url
        self.timings = PhaseTimes()  #: time per phase of write_batch (insert, score, …, commit), for bench

    # -- lifecycle -------------------------------------------------------------------------
    @abstractmethod
    def connect(self) -> None:
        """Open the connection (raise BackendUnavailable when the server does not answer)."""

    @abstractmethod
    def close(self) -> None:
        """Close the connection; never raises."""

    def session(self) -> Backend:
        """A second session on the same database, for another thread (models installed ahead of a swap);
        connect() it before use. Engines whose connections share an in-process database override it."""
        return type(self)(self.url)

    @abstractmethod
    def init_schema(self) -> None:
        """Create tables and in-database code if missing; running it twice is harmless."""

    # -- offsets ---------------------------------------------------------------------------
    @abstractmethod
    def stored_offsets(self, group: str, topic: str) -> dict[int, int]:
        """Next offset to consume per partition, as committed with the rows."""

    @abstractmethod
    def store_offsets(self, group: str, offsets: dict[TopicPartitionKey, int]) -> None:
        """Store offsets alone (for batches that held only dead-lettered messages)."""

    # -- models ----------------------------------------------------------------------------
    def install_model(self, artifact: ModelArtifact) -> None:
        """Store the weights as data, keyed by name + version (see the module doc: name limit,
        same weights a no-op, different weights ``version-conflict``)."""
        check_model_name(artifact.name)
        self._install_model(artifact)

    @abstractmethod
    def _install_model(self, artifact: ModelArtifact) -> None:
        """Engine part of install_model: the name is checked; use :func:`already_installed`."""

    @abstractmethod
    def installed_versions(self, name: str) -> list[int]:
        """Versions of ``name`` whose weights are in the database, ascending."""

    @abstractmethod
    def load_model(self, ref: ModelRef) -> ModelArtifact:
        """Rebuild an installed model from its rows (its digest proves the rows are intact)."""

    # -- scoring ---------------------------------------------------------------------------
    @abstractmethod
    def write_batch(self, batch: ImageBatch, model: ModelRef, group: str) -> ScoredBatch:
        """Insert, score in the database, store predictions and offsets; commit (see module doc)."""

    def write_set(self, batch: ImageBatch, serving: ServingSet, group: str) -> list[ScoredBatch]:
        """Score ``batch`` with every version of ``serving`` (module doc); served result first. A lone champion is
        write_batch; "multi-version" engines override _write_set, the fallback writes the shadows (no offsets) first."""
        if not serving.shadows and not serving.is_ensemble:
            return [self.write_batch(batch, serving.served[0], group)]
        if "multi-version" in self.implements:
            return self._write_set(batch, serving, group)
        if serving.is_ensemble:
            raise ConfigError(f"the {self.name} backend cannot serve an ensemble ({serving}) yet: it scores one "
                              "version per call; serve a champion, or use DuckDB, PostgreSQL or Kinetica")
        no_offsets = ImageBatch(batch.batch_id, batch.image_ids, batch.pixels, batch.labels, batch.produced_at,
                                batch.sources, {})
        shadows = [self.write_batch(no_offsets, ref, group) for ref in serving.shadows]
        return [self.write_batch(batch, serving.served[0], group), *shadows]

    def _write_set(self, batch: ImageBatch, serving: ServingSet, group: str) -> list[ScoredBatch]:
        """Engine part of write_set for "multi-version" engines: one transaction for every version."""
        raise NotImplementedError(f"{type(self).__name__} declares 'multi-version' but does not override _write_set")

    @abstractmethod
    def score(self, pixels: npt.NDArray[np.uint8], model: ModelRef) -> npt.NDArray[np.float32]:
        """Class probabilities computed in the database, storing nothing (canaries, checks, bench)."""

    # -- evaluation in the database (sql/<engine>/evaluation.sql) ------------------------------
    def evaluation(self) -> DatabaseEvaluation:
        """Served predictions per model version, per (version, true digit), and the confusion cells."""
        with self.translate_errors("evaluating the stored predictions"):
            versions, digits, confusion = self._select_named(
                ("evaluation_by_version", "evaluation_by_digit", "evaluation_confusion"))
        return DatabaseEvaluation.from_rows(versions, digits, confusion)

    def misclassified(self) -> list[Misclassified]:
        """The first misclassified images of each model version (by image id), with their pixels."""
        with self.translate_errors("reading misclassified images"):
            (rows,) = self._select_named(("evaluation_misclassified",))
        return [Misclassified.from_row(row) for row in rows]

    @abstractmethod
    def _select_named(self, names: tuple[str, ...]) -> list[list[Row]]:
        """The rows of each bind-free named SELECT ``names`` (of ``evaluation.STATEMENTS``), in order; engines
        that can run them in one read-only snapshot do."""

    # -- optional capabilities (see ``implements``) --------------------------------------------
    def require(self, capability: str) -> None:
        """ConfigError unless this engine implements ``capability`` (ask before connecting)."""
        if capability not in self.implements:
            offered = ", ".join(sorted(self.implements)) or "nothing optional"
            example = ", e.g. kinetica://… for training" if capability == "train" else ""
            raise ConfigError(f"the {self.name} backend does not implement {capability!r} (it implements: "
                              f"{offered}); choose a backend that does{example}")

    def train_model(self, config: TrainConfig, mnist_dir: Path | None = None) -> ModelArtifact:
        """Train ``config`` inside the database on the MNIST training split (read from ``mnist_dir``),
        install the model and return it (capability "train")."""
        self.require("train")
        raise NotImplementedError(f"{type(self).__name__} declares 'train' but does not override train_model")

    def drop_schema(self) -> None:
        """Drop the schema of this URL with everything in it (capability "drop-schema")."""
        self.require("drop-schema")
        raise NotImplementedError(f"{type(self).__name__} declares 'drop-schema' but does not override it")

    def purge(self, older_than_s: float) -> PurgeReport:
        """Delete the images stored more than ``older_than_s`` seconds ago and their predictions
        (capability "purge"). Offsets and models stay: a purged image is not consumed again."""
        self.require("purge")
        raise NotImplementedError(f"{type(self).__name__} declares 'purge' but does not override it")

    def labeled_images(self) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
        """Pixels (n, 784) and labels (n,) of every stored image that came with a label, in id order
        (capability "labeled-images": the training data of ``streamscore train --from-backend``)."""
        self.require("labeled-images")
        raise NotImplementedError(f"{type(self).__name__} declares 'labeled-images' but does not override it")

    def stored_lifecycle(self, name: str) -> tuple[int, str] | None:
        """(revision, state JSON) of the model lifecycle last applied by a consumer of this database
        (capability "lifecycle"; None when there is none or the engine does not keep it)."""
        return None

    def store_lifecycle(self, name: str, revision: int, state: str) -> None:  # noqa: B027 - optional
        """Keep the applied lifecycle state (capability "lifecycle"); a lower revision never overwrites."""

    def engine_benchmarks(self, images: int) -> dict[str, float]:
        """Figures only this engine has (e.g. PostgreSQL's ingest paths) for ``streamscore bench``."""
        return {}

    def cached_models(self) -> list[tuple[str, int]] | None:
        """(name, version) of the weights held in memory for scoring: in this process and, where the
        engine caches there, in this connection's database session; least recently used first.
        At most ``model_cache.MAX_CACHED_VERSIONS`` per cache, however many swaps there were.
        None when the engine cannot tell (Oracle: package state, bounded by ``c_max_cached``)."""
        return None

    def maintain(self) -> None:  # noqa: B027 - optional hook
        """A gap between two batches without a model install: pausing housekeeping may run (DuckDB's checkpoints)."""

    def memory_mb(self) -> float | None:
        """MB the database holds for this connection, where it can be read (bench: memory over swaps)."""
        return None

    # -- errors ----------------------------------------------------------------------------
    def classify(self, exc: BaseException) -> ErrorKind:
        """What a driver exception means; engines override it with their codes (SQLSTATE, ORA-…)."""
        if isinstance(exc, self.data_errors):
            return ErrorKind("data", BackendDataError.reason)
        if isinstance(exc, self.retriable_errors):
            return ErrorKind("retriable", BackendUnavailable.reason)
        return ErrorKind("fatal", BackendError.reason)

    def error_detail(self, exc: BaseException) -> str:
        """One line about a driver exception, without secrets (engines add codes, scrub text)."""
        return describe(exc)

    def error_fix(self, exc: BaseException) -> str | None:
        """What to do about a fatal driver exception, when the engine knows (None otherwise)."""
        return None

    def translate(self, exc: Exception, action: str) -> StreamscoreError:
        """The streamscore error for a driver exception, built from :meth:`classify`.

        data → BackendDataError, retriable → BackendUnavailable(retry_after), fatal → BackendError,
        each with the classification's reason; reason ``not-installed`` → ArtifactError.
        """
        kind = self.classify(exc)
        detail = self.error_detail(exc)
        if kind.reason == "not-installed":
            return ArtifactError(f"{self.name}: {detail} (while {action}): install_model() it first",
                                 reason=kind.reason)
        if kind.kind == "data":
            return BackendDataError(f"{self.name} rejected the data while {action}: {detail}", reason=kind.reason)
        if kind.kind == "retriable":
            return BackendUnavailable(f"{self.name} unavailable while {action}: {detail}",
                                      retry_after=1.0 if kind.retry_after is None else kind.retry_after,
                                      reason=kind.reason)
        fix = self.error_fix(exc)
        return BackendError(f"{self.name} failed while {action}: {detail}" + (f" — {fix}" if fix else ""),
                            reason=kind.reason)

    def discard_broken_connection(self, exc: Exception) -> None:  # noqa: B027 - optional hook
        """Close the connection when ``exc`` left it unusable, so that the next call reconnects."""

    @contextlib.contextmanager
    def translate_errors(self, action: str) -> Iterator[None]:
        """Map driver exceptions onto the streamscore tree (see :meth:`translate`)."""
        try:
            yield
        except StreamscoreError:
            raise
        except Exception as exc:
            self.discard_broken_connection(exc)
            raise self.translate(exc, action) from exc

    def __enter__(self) -> Backend:
        self.connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url.masked()!r})"
