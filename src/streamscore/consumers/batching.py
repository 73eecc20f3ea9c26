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
    offsets: dict[TopicPartitionKey, int] = {}
    for message in messages:
        topic, partition, offset = position(message)
        if offsets.get((topic, partition), 0) <= offset:
            offsets[(topic, partition)] = offset + 1
        try:
            image = decode_image(message.key(), message.value(), message.headers())
        except MessageError as exc:
            rejected.append(Rejected(message, exc.reason, exc.message, "decode"))
            continue
        label = -1 if image.label is None else image.label
        if first_content.setdefault(image.image_id, (image.pixels, label)) != (image.pixels, label):
            rejected.append(id_conflict(message, "in this batch"))
            continue
        ids.append(image.image_id)
        pixels.append(image.pixels)
        labels.append(label)
        produced.append(image.produced_at)
        sources.append(SourceOffset(topic, partition, offset))
    batch = ImageBatch(
        batch_id=uuid.uuid4().hex,
        image_ids=ids,
        pixels=np.frombuffer(b"".join(pixels), np.uint8).reshape(-1, 784),
        labels=np.asarray(labels, np.int16),
        produced_at=np.asarray(produced, np.int64),
        sources=sources,
        offsets=offsets,
    )
    return batch, rejected
