"""Turn a list of Kafka messages into an ImageBatch plus the messages that must be dead-lettered."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import numpy as np
from confluent_kafka import Message

from streamscore.backends.base import ImageBatch, SourceOffset, TopicPartitionKey
from streamscore.errors import MessageError
from streamscore.shared.messages import decode_image, position


@dataclass(frozen=True)
class Rejected:
    """A message that cannot be stored, with why (the DLQ headers)."""

    message: Message
    reason: str
    text: str
    stage: str


def next_offsets(messages: list[Message]) -> dict[TopicPartitionKey, int]:
    offsets: dict[TopicPartitionKey, int] = {}
    for message in messages:
        topic, partition, offset = position(message)
        offsets[(topic, partition)] = max(offsets.get((topic, partition), 0), offset + 1)
    return offsets


#: DLQ reason of an image id that arrives again with other pixels or label
ID_CONFLICT = "id-conflict"


def id_conflict(message: Message, where: str) -> Rejected:
    return Rejected(message, ID_CONFLICT,
                    f"image id {message.key()!r} was already {where} with other pixels or label; ids must be "
                    "unique per image (the first content is kept; send the new image under a new id)", "database")


def build_batch(messages: list[Message]) -> tuple[ImageBatch, list[Rejected]]:
    """Decode every message; the batch's offsets cover all of them, good and bad.

    An id repeated in the batch with the same content is kept (the database absorbs it); with
    other pixels or label it is rejected as an id conflict, so the first content wins, as it
    does against rows already stored.
    """
    first_content: dict[str, tuple[bytes, int]] = {}
    ids: list[str] = []
    pixels: list[bytes] = []
    labels: list[int] = []
    produced: list[int] = []
    sources: list[SourceOffset] = []
    rejected: list[Rejected] = []
    for message in messages:
        try:
            image = decode_image(message.key(), message.value(), message.headers())
        except MessageError as exc:
            rejected.append(Rejected(message, exc.reason, exc.message, "decode"))
            continue
        content = (image.pixels, -1 if image.label is None else image.label)
        if first_content.setdefault(image.image_id, content) != content:
            rejected.append(id_conflict(message, "in this batch"))
            continue
        ids.append(image.image_id)
        pixels.append(image.pixels)
        labels.append(-1 if image.label is None else image.label)
        produced.append(image.produced_at)
        sources.append(SourceOffset(*position(message)))
    batch = ImageBatch(
        batch_id=uuid.uuid4().hex,
        image_ids=ids,
        pixels=np.frombuffer(b"".join(pixels), np.uint8).reshape(-1, 784),
        labels=np.asarray(labels, np.int16),
        produced_at=np.asarray(produced, np.int64),
        sources=sources,
        offsets=next_offsets(messages),
    )
    return batch, rejected
