"""Predictions and dead letters to Kafka, after the database commit (see .checkpoint).

Both topics are written at-least-once with the idempotent producer (no duplicates
from librdkafka's own retries): a crash before the Kafka offset commit re-sends
them. The evaluator de-duplicates predictions by (image id, model version); a
dead letter is identified by its ``source.topic/partition/offset`` headers.

Nothing is dropped: every record of a batch stays in the publisher's outbox until
its delivery is acknowledged. A delivery that failed (timed out during an outage)
is produced again; a fatal producer error (idempotence state lost) replaces the
producer and re-sends everything not yet acknowledged.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator

from confluent_kafka import KafkaError as LibrdkafkaError
from confluent_kafka import Message, Producer

from streamscore.backends.base import ImageBatch, ScoredBatch
from streamscore.consumers.batching import Rejected
from streamscore.consumers.metrics import ScorerMetrics
from streamscore.shared.messages import dlq_headers, encode_predictions
from streamscore.shared.timing import PhaseTimes

log = logging.getLogger(__name__)

Source = tuple[str, int, int]
Record = tuple[str, bytes | None, bytes | None, list[tuple[str, bytes | str | None]]]
#: builds a producer whose librdkafka errors go to the given callback
ProducerFactory = Callable[[Callable[[LibrdkafkaError], None]], Producer]


def source_of(message: Message) -> Source:
    """(topic, partition, offset) of a consumed message."""
    return str(message.topic()), int(message.partition() or 0), int(message.offset() or 0)


class Publisher:
    """Produces one prediction per scored image and one DLQ message per refused one."""

    def __init__(self, make_producer: ProducerFactory, predictions_topic: str, dlq_topic: str, backend_name: str,
                 metrics: ScorerMetrics, on_error: Callable[[LibrdkafkaError], None] = lambda error: None,
                 timings: PhaseTimes | None = None) -> None:
        self.make_producer = make_producer
        #: time spent encoding predictions and handing records to librdkafka (bench's breakdown)
        self.timings = timings or PhaseTimes()
        self.predictions_topic = predictions_topic
        self.dlq_topic = dlq_topic
        self.backend_name = backend_name
        self.metrics = metrics
        self.on_error = on_error
        self.producer = make_producer(self._on_error)
        #: records of the batch in hand by number, and those not yet acknowledged / to produce again
        self._outbox: list[Record] = []
        self._unacked: set[int] = set()
        self._failed: set[int] = set()
        self._fatal = False

    @property
    def sent(self) -> int:
        """Records of the batch in hand (all acknowledged once :meth:`flush` returned 0)."""
        return len(self._outbox)

    @property
    def pending(self) -> int:
        """Records of the batch in hand not yet acknowledged by Kafka."""
        return len(self._unacked)

    def publish(self, batch: ImageBatch, scored: list[ScoredBatch], rejected: list[Rejected]) -> dict[int, int]:
        """Queue everything for Kafka (see :meth:`flush`); returns the images served per model version
        (shadow predictions are sent, and counted in the per-version metric, but not served)."""
        self._outbox, self._unacked, self._failed = [], set(), set()
        with self.timings.phase("produce"):
            for item in rejected:
                self.dead_letter(item)
        per_version: dict[int, int] = {}
        row_of = {image_id: row for row, image_id in enumerate(batch.image_ids)}
        for result in scored:
            rows = [row_of[image_id] for image_id in result.image_ids]
            with self.timings.phase("encode"):
                records = list(self._predictions(batch, result, rows))
            with self.timings.phase("produce"):
                for key, value, headers in records:
                    self._produce(self.predictions_topic, key, value, headers)
            version = result.model.version
            self.metrics.scored.labels(str(version)).inc(len(result.image_ids))
            if result.served:
                per_version[version] = per_version.get(version, 0) + len(result.image_ids)
                self.metrics.observe_latency(batch.produced_at[rows], result.scored_at)
        return per_version

    def _predictions(self, batch: ImageBatch, result: ScoredBatch, rows: list[int]
                     ) -> Iterator[tuple[bytes, bytes, list[tuple[str, bytes | str | None]]]]:
        """(key, JSON value, headers) of the prediction of every image of ``result``."""
        values = encode_predictions(
            result.image_ids, result.predicted.tolist(), result.probabilities.tolist(),
            batch.labels[rows].tolist(), batch.produced_at[rows].tolist(), result.scored_at.tolist(),
            model_name=result.model.name, model_version=result.model.version, role=result.model.role,
            backend=self.backend_name, members=result.members or None)
        headers: list[tuple[str, bytes | str | None]] = [("model-version", str(result.model.version).encode())]
        for image_id, value in zip(result.image_ids, values, strict=True):
            yield image_id.encode(), value, headers

    def flush(self, timeout: float) -> int:
        """Wait up to ``timeout`` for acknowledgements; returns how many are still missing.

        Failed deliveries are produced again (on a new producer after a fatal error), so
        calling this until it returns 0 delivers every record at least once.
        """
        remaining = self.producer.flush(timeout)
        if self._fatal:
            log.warning("the producer failed fatally; re-sending %d record(s) on a new producer", len(self._unacked))
            self.replace_producer()
        elif not self._failed and not remaining:
            return len(self._unacked)
        for number in sorted(self._failed):
            self._produce_number(number)
        self._failed = set()
        return len(self._unacked)

    def replace_producer(self) -> None:
        """Drop the producer (its queue purged) for a new one; the next :meth:`flush` re-sends what is unacknowledged.

        For a producer that cannot recover: a fatal error, or a broker that lost its idempotence
        state in a restart and leaves the old producer's records unacknowledged forever.
        """
        old = self.producer
        with contextlib.suppress(Exception):
            old.purge()
            old.flush(0)
        self.producer = self.make_producer(self._on_error)
        self._failed = set(self._unacked)
        self._fatal = False

    def close(self, timeout: float) -> int:
        """Deliver what is queued within ``timeout``; returns the records left undelivered."""
        return int(self.producer.flush(timeout))

    def _on_error(self, error: LibrdkafkaError) -> None:
        if error.fatal():
            self._fatal = True
        self.on_error(error)

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
        self._outbox.append((topic, key, value, headers))
        self._unacked.add(len(self._outbox) - 1)
        self._produce_number(len(self._outbox) - 1)

    def _produce_number(self, number: int) -> None:
        topic, key, value, headers = self._outbox[number]

        def delivered(error: LibrdkafkaError | None, _message: Message) -> None:
            if error is None:
                self._unacked.discard(number)
            else:
                log.debug("delivery to %s failed (%s): will send again", topic, error)
                self._failed.add(number)
                if error.fatal():
                    self._fatal = True

        while True:
            try:
                self.producer.produce(topic, key=key, value=value, headers=headers, on_delivery=delivered)
                return
            except BufferError:  # local queue full: let deliveries drain
                self.producer.poll(0.1)
