"""The dashboard's readers of the images, dead-letter and models topics (the evaluation topic has its own).

One consumer follows the three topics from the beginning, outside any consumer group's
committed offsets (a fresh group id per run, nothing committed): the dashboard only watches.
Images feed the :class:`PixelCache`, dead letters the ops :class:`DeadLetters` tally (distinct
by source offset), model records the :class:`PublishedModels` list.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import uuid
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, TopicPartition

from streamscore.dashboard.pixels import PixelCache
from streamscore.errors import ArtifactError, KafkaError, MessageError
from streamscore.model.artifact import ModelArtifact
from streamscore.ops.topic_summary import DeadLetters
from streamscore.shared.config import Settings
from streamscore.shared.kafka import describe_kafka_error, make_consumer
from streamscore.shared.messages import decode_image, header_model_version, headers_to_dict
from streamscore.shared.model_records import LIFECYCLE, parse_record

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PublishedModel:
    """One record of the models topic, as far as it can be read without installing it."""

    name: str
    version: int
    sha256: str
    #: why a consumer would refuse it ("" when the artifact reads and its digest matches)
    problem: str
    test_accuracy: float | None
    created_at: int | None


class PublishedModels:
    """Every (model name, version) published on the models topic, the last record of each winning."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: dict[tuple[str, int], PublishedModel] = {}

    def add(self, key: bytes | None, value: bytes | None, headers: dict[str, bytes]) -> None:
        version = header_model_version(headers)
        if key is None or value is None or version is None:
            return  # tombstones and records without a version are not models (consumers skip them too)
        name, kind = parse_record(key, headers)  # an artifact record's key "<name>@v<N>" names its model
        if kind == LIFECYCLE:
            return  # a lifecycle snapshot (roles come from the predictions), not an artifact
        sha256 = headers.get("sha256", b"").decode("latin-1")
        problem, accuracy, created = "", None, None
        if hashlib.sha256(value).hexdigest() != sha256:
            problem = "bad-digest"
        try:
            manifest = ModelArtifact.from_bytes(value).manifest
            metric = manifest.get("metrics", {}).get("test_accuracy")
            accuracy = float(metric) if isinstance(metric, int | float) else None
            created = int(manifest["created_at"]) if isinstance(manifest.get("created_at"), int) else None
        except ArtifactError as exc:
            problem = problem or exc.reason
        except (ValueError, KeyError, TypeError, OverflowError):  # whatever else a hostile record holds
            problem = problem or "unreadable"
        with self._lock:
            self._models[(name, version)] = PublishedModel(name, version, sha256, problem, accuracy, created)

    def all(self) -> list[PublishedModel]:
        with self._lock:
            return [self._models[key] for key in sorted(self._models)]


class SideTopicsReader(threading.Thread):
    """Follows the images, DLQ and models topics until ``stop``; a failure is kept in ``failure`` and sets ``stop``."""

    def __init__(self, settings: Settings, pixels: PixelCache, dead_letters: DeadLetters,
                 dead_letters_lock: threading.Lock, models: PublishedModels, stop: threading.Event) -> None:
        super().__init__(name="dashboard-topics", daemon=True)
        self.settings, self.pixels, self.models, self.stop = settings, pixels, models, stop
        self.dead_letters, self.dead_letters_lock = dead_letters, dead_letters_lock
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            consumer = make_consumer(self.settings, f"{self.settings.group}.dashboard.{uuid.uuid4().hex[:8]}")
            try:
                self._follow(consumer)
            finally:
                consumer.close()
        except BaseException as exc:  # surfaced by the dashboard's main thread
            self.failure = exc
            self.stop.set()

    def _follow(self, consumer: Consumer) -> None:
        topics = (self.settings.images_topic, self.settings.dlq_topic, self.settings.models_topic)
        consumer.assign([tp for topic in topics for tp in _partitions(consumer, topic)])
        handlers: dict[str, Any] = {
            self.settings.images_topic: self._image,
            self.settings.dlq_topic: self._dead_letter,
            self.settings.models_topic: self._model,
        }
        while not self.stop.is_set():
            for message in consumer.consume(500, 0.2):
                if not message.error():
                    handlers[message.topic() or ""](message)

    def _image(self, message: Message) -> None:
        try:
            image = decode_image(message.key(), message.value(), message.headers())
        except MessageError:
            return  # the scorer dead-letters it; the DLQ panel shows it
        self.pixels.add_image(image.image_id, image.pixels)

    def _dead_letter(self, message: Message) -> None:
        with self.dead_letters_lock:
            self.dead_letters.add(headers_to_dict(message.headers()))

    def _model(self, message: Message) -> None:
        self.models.add(message.key(), message.value(), headers_to_dict(message.headers()))


def _partitions(consumer: Consumer, topic: str, timeout: float = 15.0) -> list[TopicPartition]:
    """Every partition of ``topic`` from the beginning (partition 0 when it does not exist yet)."""
    try:
        metadata = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
    except KafkaException as exc:
        raise KafkaError(f"cannot read the partitions of {topic}: {describe_kafka_error(exc)}; is Kafka up? "
                         "(start one with `streamscore broker` or set STREAMSCORE_KAFKA_BOOTSTRAP)",
                         reason="kafka-unreachable") from None
    partitions = list(metadata.partitions) if metadata is not None and metadata.partitions else [0]
    return [TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions]
