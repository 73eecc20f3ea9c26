"""Step 5 of the scoring loop: predictions and dead letters to Kafka, after the database commit.

Both topics are written at-least-once with the idempotent producer (no duplicates
from librdkafka's own retries): a crash before the Kafka offset commit re-sends
them. The evaluator de-duplicates predictions by (image id, model version); a
dead letter is identified by its ``source.topic/partition/offset`` headers.
"""

from __future__ import annotations

import logging

from confluent_kafka import Message, Producer

from streamscore.backends.base import ImageBatch, ScoredBatch
from streamscore.consumers.batching import Rejected
from streamscore.consumers.metrics import ScorerMetrics
from streamscore.shared.kafka import flush
from streamscore.shared.messages import Prediction, dlq_headers

log = logging.getLogger(__name__)

Source = tuple[str, int, int]


def source_of(message: Message) -> Source:
    """(topic, partition, offset) of a consumed message."""
    return str(message.topic()), int(message.partition() or 0), int(message.offset() or 0)


class Publisher:
    """Produces one prediction per scored image and one DLQ message per refused one."""

    def __init__(self, producer: Producer, predictions_topic: str, dlq_topic: str, backend_name: str,
                 metrics: ScorerMetrics) -> None:
        self.producer = producer
        self.predictions_topic = predictions_topic
        self.dlq_topic = dlq_topic
        self.backend_name = backend_name
        self.metrics = metrics

    def publish(self, batch: ImageBatch, scored: list[ScoredBatch], rejected: list[Rejected]) -> dict[int, int]:
        """Send everything and flush; returns the images published per model version."""
        for item in rejected:
            self.dead_letter(item)
        per_version: dict[int, int] = {}
        row_of = {image_id: row for row, image_id in enumerate(batch.image_ids)}
        for result in scored:
            rows = [row_of[image_id] for image_id in result.image_ids]
            for i, image_id in enumerate(result.image_ids):
                row = rows[i]
                label = int(batch.labels[row])
                prediction = Prediction(
                    image_id=image_id,
                    predicted=int(result.predicted[i]),
                    probabilities=tuple(float(p) for p in result.probabilities[i]),
                    label=None if label < 0 else label,
                    model_name=result.model.name,
                    model_version=result.model.version,
                    role=result.model.role,
                    backend=self.backend_name,
                    produced_at=int(batch.produced_at[row]),
                    scored_at=int(result.scored_at[i]),
                )
                self._produce(self.predictions_topic, image_id.encode(), prediction.to_json(),
                              list(prediction.headers()))
            version = result.model.version
            per_version[version] = per_version.get(version, 0) + len(result.image_ids)
            self.metrics.scored.labels(str(version)).inc(len(result.image_ids))
            self.metrics.observe_latency(batch.produced_at[rows], result.scored_at)
        flush(self.producer)
        return per_version

    def dead_letter(self, item: Rejected) -> None:
        message = item.message
        topic, partition, offset = source_of(message)
        headers: list[tuple[str, bytes | str | None]] = list(dlq_headers(
            reason=item.reason, message=item.text, stage=item.stage, topic=topic, partition=partition, offset=offset,
        ))
        original = message.headers() or []
        if isinstance(original, dict):
            original = list(original.items())
        headers += [(name, value or b"") for name, value in original]
        self._produce(self.dlq_topic, message.key(), message.value(), headers)
        self.metrics.dead_lettered.labels(item.reason).inc()
        log.info("dead-lettered %s[%d]@%d: %s", topic, partition, offset, item.reason)

    def _produce(self, topic: str, key: bytes | None, value: bytes | None,
                 headers: list[tuple[str, bytes | str | None]]) -> None:
        while True:
            try:
                self.producer.produce(topic, key=key, value=value, headers=headers)
                return
            except BufferError:  # local queue full: let deliveries drain
                self.producer.poll(0.1)
