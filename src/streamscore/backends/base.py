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

Models: ``install_model`` checks the name against :data:`MAX_MODEL_NAME_BYTES` (every engine's
column holds that much), is a no-op for a version already installed with the same weights and
refuses one installed with different weights (``ArtifactError`` reason ``version-conflict``).
Scoring with a version that is not installed raises ``ArtifactError`` reason ``not-installed``.

Offsets never move backwards: storing an offset lower than the stored one keeps the stored one
(a late replay of an old batch cannot rewind the progress of the consumer that owns it now).

Predictions missing after scoring (another consumer moved the rows in a rebalance race) raise
``BackendUnavailable`` reason ``predictions-missing``: the loop retries the batch (and stops
after a few repeats), it never dead-letters or drops it.

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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import numpy.typing as npt

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

TopicPartitionKey = tuple[str, int]

#: the longest model name (UTF-8 bytes) every engine stores in full (Kinetica: char64)
MAX_MODEL_NAME_BYTES = 64
#: the roles a backend stores predictions under (the "role" of the evaluation topic)
ROLES = ("champion", "shadow")


@dataclass(frozen=True)
class ModelRef:
    """Which model scores a batch: name + version (every prediction carries it) and the serving role.

    ``role`` is "champion" (served) or "shadow" (scored and stored, never served); it is written
    into every stored prediction and is what the evaluation topic shows.
    """

    name: str
    version: int
    role: str = "champion"

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ConfigError(f"model role {self.role!r} is not one of {', '.join(ROLES)}")

    @property
    def key(self) -> tuple[str, int]:
        """(name, version): what identifies the weights, whatever the role."""
        return (self.name, self.version)

    def __str__(self) -> str:
        return f"{self.name}:v{self.version}"


@dataclass(frozen=True)
class SourceOffset:
    """Where one row came from on Kafka (for DLQ headers and offset bookkeeping)."""

    topic: str
    partition: int
    offset: int


@dataclass
class ImageBatch:
    """Decoded images ready for the database; row i of every array belongs together."""

    batch_id: str
    image_ids: list[str]
    pixels: npt.NDArray[np.uint8]  # (n, 784)
    labels: npt.NDArray[np.int16]  # -1 where the message had no label
    produced_at: npt.NDArray[np.int64]
    sources: list[SourceOffset]
    #: next offset to consume per (topic, partition); may cover rows that were dead-lettered
    offsets: dict[TopicPartitionKey, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.image_ids)

    def subset(self, rows: Sequence[int], batch_id: str | None = None) -> ImageBatch:
        index = np.asarray(rows, dtype=np.int64)
        sources = [self.sources[i] for i in rows]
        offsets: dict[TopicPartitionKey, int] = {}
        for source in sources:
            key = (source.topic, source.partition)
            offsets[key] = max(offsets.get(key, 0), source.offset + 1)
        return ImageBatch(
            batch_id or self.batch_id,
            [self.image_ids[i] for i in rows],
            self.pixels[index],
            self.labels[index],
            self.produced_at[index],
            sources,
            offsets,
        )

    def unique_rows(self) -> list[int]:
        """Row numbers of the first occurrence of each image id."""
        seen: dict[str, int] = {}
        for row, image_id in enumerate(self.image_ids):
            seen.setdefault(image_id, row)
        return sorted(seen.values())


@dataclass(frozen=True)
class ScoredBatch:
    """The scores of a committed batch: one row per distinct image id.

    The scores are those the database computed for this batch with ``model`` (whose ``role`` the
    predictions were stored under); a replayed image keeps its first stored row (same model,
    same digit). ``scored_at`` is the same on every engine: the epoch ms at which *this*
    ``write_batch`` call started, for every row, replayed ones included (the stored row keeps
    the time it was first scored).
    """

    image_ids: list[str]
    predicted: npt.NDArray[np.int64]
    probabilities: npt.NDArray[np.float32]  # (n, 10)
    scored_at: npt.NDArray[np.int64]  # epoch ms
    model: ModelRef


class Backend(ABC):
    """One database connection that stores, scores and remembers offsets."""

    #: URL schemes that select this backend
    schemes: ClassVar[tuple[str, ...]] = ()
    #: short name written into every prediction's "backend" field
    name: ClassVar[str] = ""
    #: pip extra that installs the driver
    extra: ClassVar[str] = ""
    #: True when one batch (images, predictions, offsets) commits atomically
    transactional: ClassVar[bool] = True
    #: True when several consumer processes may write to one database at once
    concurrent_writers: ClassVar[bool] = True
    #: driver exceptions that mean "outage, retry later"
    retriable_errors: ClassVar[tuple[type[BaseException], ...]] = ()
    #: driver exceptions that mean "these rows are bad" (bisect and dead-letter)
    data_errors: ClassVar[tuple[type[BaseException], ...]] = ()

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

    # -- lifecycle -------------------------------------------------------------------------
    @abstractmethod
    def connect(self) -> None:
        """Open the connection (raise BackendUnavailable when the server does not answer)."""

    @abstractmethod
    def close(self) -> None:
        """Close the connection; never raises."""

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

    @abstractmethod
    def score(self, pixels: npt.NDArray[np.uint8], model: ModelRef) -> npt.NDArray[np.float32]:
        """Class probabilities computed in the database, storing nothing (canaries, checks, bench)."""

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


def check_model_name(name: str) -> None:
    """ArtifactError unless ``name`` fits every engine's model-name column."""
    size = len(name.encode("utf-8"))
    if not name or size > MAX_MODEL_NAME_BYTES:
        raise ArtifactError(
            f"model name {name[:80]!r} is {size} bytes; names must be 1 to {MAX_MODEL_NAME_BYTES} "
            "UTF-8 bytes: rename the model", reason="bad-name",
        )


def already_installed(ref: ModelRef, stored_sha256: str | None, artifact: ModelArtifact) -> bool:
    """True when ``ref`` is installed with the artifact's weights; ArtifactError when with others."""
    if stored_sha256 is None:
        return False
    if stored_sha256 != artifact.sha256:
        raise ArtifactError(
            f"{ref} is already installed with different weights (sha256 {stored_sha256[:12]}…, "
            f"new {artifact.sha256[:12]}…): publish the new weights under a new version",
            reason="version-conflict",
        )
    return True


def not_installed(ref: ModelRef, where: str) -> ArtifactError:
    """The error for scoring or loading a version that is not installed (every engine)."""
    return ArtifactError(
        f"model {ref} is not installed in {where}: install_model() it first", reason="not-installed"
    )


def predictions_missing(missing: Sequence[str], expected: int, model: ModelRef) -> BackendUnavailable:
    """The error for rows without a prediction after scoring (retried: a rebalance race)."""
    return BackendUnavailable(
        f"{len(missing)} of {expected} images have no {model} {model.role} prediction after "
        f"scoring (first: {missing[0]!r}), e.g. another consumer took them over; the batch "
        "will be written again", reason="predictions-missing",
    )


def describe(exc: BaseException) -> str:
    """One line naming the driver error, its code when it has one (SQLSTATE, ORA-…)."""
    code = getattr(exc, "sqlstate", None) or getattr(exc, "full_code", None)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    prefix = f"[{code}] " if code else ""
    return f"{prefix}{type(exc).__name__}: {text}"[:500]
