"""The values that cross the Backend seam: which model scores (ModelRef), what comes in
(ImageBatch, SourceOffset) and what comes back (ScoredBatch)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from streamscore.errors import ConfigError

TopicPartitionKey = tuple[str, int]

#: the longest model name (UTF-8 bytes) every engine stores in full (Kinetica: char64)
MAX_MODEL_NAME_BYTES = 64
#: the roles a backend stores predictions under: "champion" (served alone), "shadow" (scored, never
#: served), "member" (one member's own row of a served ensemble) and "ensemble" (the served mean of
#: the members, under the newest member's version); the evaluation topic shows all but "member"
ROLES = ("champion", "shadow", "member", "ensemble")


@dataclass(frozen=True)
class ModelRef:
    """Which model scores a batch: name + version (every prediction carries it) and the serving role.

    ``role`` is "champion" (served) or "shadow" (scored and stored, never served), "member" for a
    version that is one member of a served ensemble (see :class:`ServingSet`) and "ensemble" for the
    served mean of the members; it is written into every stored prediction.
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

    ``conflicts`` lists the image ids of the batch that were already stored with different
    content (pixels or label): they are neither stored again nor scored, and are not in
    ``image_ids``; the loop dead-letters them with reason ``id-conflict``, so the database and
    the evaluation topic never disagree about what an id holds.
    """

    image_ids: list[str]
    predicted: npt.NDArray[np.int64]
    probabilities: npt.NDArray[np.float32]  # (n, 10)
    scored_at: npt.NDArray[np.int64]  # epoch ms
    model: ModelRef
    conflicts: list[str] = field(default_factory=list)
    #: versions whose probabilities were averaged (role "ensemble" only), ascending
    members: tuple[int, ...] = ()

    @property
    def served(self) -> bool:
        """True for the one answer per image (champion or ensemble), False for a shadow's."""
        return self.model.role in ("champion", "ensemble")


@dataclass(frozen=True)
class ServingSet:
    """The versions in force for one batch: what is served, and which shadows score alongside.

    ``served`` holds one ref with role "champion", or two or more with role "member" (an ensemble:
    the served answer is the mean of their probabilities, computed in the database, stored under
    role "ensemble" and the newest member's version). ``shadows`` hold refs with role "shadow".
    A batch is scored by exactly one ServingSet, in one database call and transaction.
    """

    served: tuple[ModelRef, ...]
    shadows: tuple[ModelRef, ...] = ()

    def __post_init__(self) -> None:
        roles = {ref.role for ref in self.served}
        single = len(self.served) == 1 and roles == {"champion"}
        ensemble = len(self.served) >= 2 and roles == {"member"}
        if not (single or ensemble):
            raise ConfigError(f"a serving set serves one champion or an ensemble of two or more members, not "
                              f"{', '.join(f'{r}/{r.role}' for r in self.served) or 'nothing'}")
        if any(ref.role != "shadow" for ref in self.shadows):
            raise ConfigError("shadow refs of a serving set must have role 'shadow'")
        versions = [ref.version for ref in self.refs]
        if len(set(versions)) != len(versions) or len({ref.name for ref in self.refs}) != 1:
            raise ConfigError(f"a serving set holds distinct versions of one model, not {versions}")

    @classmethod
    def champion(cls, ref: ModelRef) -> ServingSet:
        return cls((ModelRef(ref.name, ref.version, "champion"),))

    @property
    def refs(self) -> tuple[ModelRef, ...]:
        return self.served + self.shadows

    @property
    def is_ensemble(self) -> bool:
        return len(self.served) > 1

    @property
    def served_ref(self) -> ModelRef:
        """The ref the served predictions name: the champion, or role "ensemble" and the newest member."""
        if not self.is_ensemble:
            return self.served[0]
        return ModelRef(self.served[0].name, max(ref.version for ref in self.served), "ensemble")

    @property
    def members(self) -> tuple[int, ...]:
        return tuple(sorted(ref.version for ref in self.served)) if self.is_ensemble else ()

    def __str__(self) -> str:
        served = "+".join(f"v{v}" for v in self.members) if self.is_ensemble else f"v{self.served[0].version}"
        shadows = "".join(f", shadow v{ref.version}" for ref in self.shadows)
        return f"{self.served[0].name}:{served}{shadows}"


@dataclass(frozen=True)
class PurgeReport:
    """Rows a retention purge deleted (``Backend.purge``); offsets and models are never purged."""

    images: int
    predictions: int
