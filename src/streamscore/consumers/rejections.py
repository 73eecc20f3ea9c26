"""Failed model swaps made visible: an event on the evaluation topic and a metric.

The model watcher calls :meth:`RejectionReporter.report` once per (version, reason) it
rejects. The reporter counts it in ``streamscore_model_rejections_total{reason}`` and
produces a ``model-rejected`` record (:mod:`streamscore.shared.evaluation_events`) on the
scorer's producer. A delivery that fails (Kafka away, producer replaced) is produced again
by the next :meth:`RejectionReporter.send`, which the scorer calls between batches.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from confluent_kafka import KafkaError as LibrdkafkaError
from confluent_kafka import Message, Producer

from streamscore.consumers.metrics import ScorerMetrics
from streamscore.consumers.model_watcher import Rejection
from streamscore.shared.config import Settings
from streamscore.shared.evaluation_events import ModelRejected
from streamscore.shared.messages import now_ms

log = logging.getLogger(__name__)


class RejectionReporter:
    """Publishes rejections on the evaluation topic; ``producer`` gives the scorer's current producer."""

    def __init__(self, settings: Settings, backend_name: str, metrics: ScorerMetrics,
                 producer: Callable[[], Producer | None]) -> None:
        self.settings = settings
        self.backend_name = backend_name
        self.metrics = metrics
        self.producer = producer
        #: records to produce (new, or whose delivery failed)
        self.pending: list[ModelRejected] = []

    def report(self, rejection: Rejection) -> None:
        self.metrics.model_rejections.labels(rejection.reason).inc()
        self.pending.append(ModelRejected(
            self.settings.model_name, rejection.version, rejection.reason, rejection.message, now_ms(),
            self.backend_name, self.settings.group))
        self.send()

    def send(self) -> None:
        """Produce what is pending (no-op without a producer yet; tried again on the next call)."""
        producer = self.producer()
        if producer is None or not self.pending:
            return
        records, self.pending = self.pending, []
        for record in records:
            self._produce(producer, record)
        producer.poll(0)

    def _produce(self, producer: Producer, record: ModelRejected) -> None:
        def delivered(error: LibrdkafkaError | None, _message: Message) -> None:
            if error is not None:
                log.debug("model-rejected record not delivered (%s): will send again", error)
                self.pending.append(record)

        try:
            producer.produce(self.settings.predictions_topic, key=record.key(), value=record.to_json(),
                             headers=record.headers(), on_delivery=delivered)
        except BufferError:  # local queue full: the next call sends it
            self.pending.append(record)
