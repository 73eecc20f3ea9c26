"""The scoring loop: Kafka images → database (store + score in-DB) → evaluation topic.

Each turn of the loop:

1. switch to a newly verified model, if one arrived (so a batch sees one version);
2. collect a batch (:mod:`.collector`);
3. carry it through the database and Kafka in the order of the delivery guarantees
   (:meth:`.checkpoint.Checkpoint.commit`, whose docstring numbers the steps);
4. between batches: lag and stalls (:mod:`.partitions`), whether Kafka answers and
   whether the group still gives us the partitions (:mod:`.kafka_link`, :mod:`.membership`).

Outages of the database and of Kafka are ridden out by :mod:`.outage` (pause, back off,
reconnect, resume). A permanent error (schema missing, permission denied, a retriable
error that keeps coming back) stops the loop; nothing of the batch in hand is committed,
so a restart loses nothing. The Kafka clients come from injected factories and the
test-only crash hook is a parameter, so unit tests drive the loop with fakes of the
confluent-kafka clients (tests/support/fake_kafka.py); docs/operations.md is the operator's view.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from confluent_kafka import OFFSET_INVALID, Consumer, KafkaException, Producer, TopicPartition

from streamscore.backends.base import Backend, ScoredBatch
from streamscore.consumers.blas_threads import limit_blas_threads
from streamscore.consumers.checkpoint import Checkpoint, FaultHook
from streamscore.consumers.collector import collect
from streamscore.consumers.gc_tuning import tune_gc_for_streaming
from streamscore.consumers.install_retry import InstallRetry
from streamscore.consumers.kafka_link import KafkaLink
from streamscore.consumers.membership import MembershipCheck
from streamscore.consumers.metrics import MetricsServer, ScorerMetrics, ScorerStats
from streamscore.consumers.model_watcher import ModelWatcher
from streamscore.consumers.outage import Backoff, OutageHandler
from streamscore.consumers.partitions import Partitions
from streamscore.consumers.publisher import Publisher, source_of
from streamscore.consumers.rejections import RejectionReporter
from streamscore.consumers.watchdog import ProgressWatchdog
from streamscore.errors import BackendError, BackendUnavailable, StreamscoreError
from streamscore.logs import event
from streamscore.shared.config import Settings
from streamscore.shared.kafka import make_consumer, make_producer
from streamscore.shared.timing import PhaseTimes

__all__ = ["Scorer", "ScorerStats"]

log = logging.getLogger(__name__)

#: builds a consumer: (settings, group, **librdkafka overrides), like shared.kafka.make_consumer
ConsumerFactory = Callable[..., Consumer]
#: builds a producer: (settings, **librdkafka overrides), like shared.kafka.make_producer
ProducerFactory = Callable[..., Producer]


class Scorer:
    """Runs until ``stop`` is set (or SIGINT/SIGTERM via the CLI); finishes the batch in hand."""

    def __init__(
        self,
        settings: Settings,
        backend: Backend,
        *,
        stop: threading.Event | None = None,
        on_batch: Callable[[ScoredBatch], None] | None = None,
        metrics_host: str = "0.0.0.0",
        consumer_factory: ConsumerFactory = make_consumer,
        producer_factory: ProducerFactory = make_producer,
        fault: FaultHook | None = None,
    ) -> None:
        self.settings = settings
        self.backend = backend
        self.stop = stop or threading.Event()
        self.on_batch = on_batch
        self.consumer_factory = consumer_factory
        self.producer_factory = producer_factory
        self.fault = fault
        self.stats = ScorerStats()
        #: where the time of a batch goes in the loop (the backend's own phases: backend.timings)
        self.timings = PhaseTimes()
        self.metrics = ScorerMetrics()
        self.watchdog = ProgressWatchdog(settings.stall_timeout_s)
        self.kafka = KafkaLink(settings.kafka_bootstrap, self.metrics)
        self.rejections = RejectionReporter(settings, backend.name, self.metrics,
                                            lambda: self._publisher.producer if self._publisher else None)
        self.watcher = ModelWatcher(settings, backend, consumer_factory=consumer_factory,
                                    on_reject=self.rejections.report)
        self.metrics_host = metrics_host
        self.metrics_server: MetricsServer | None = None
        self._consumer: Consumer | None = None
        self._publisher: Publisher | None = None
        self.partitions = Partitions(self.watchdog, self.metrics)
        self.outages = OutageHandler(settings, backend, self.stop, self.stats, self.metrics,
                                     lambda: self._consumer, self.kafka, self.partitions.observe)
        self.install_retry = InstallRetry(Backoff(settings.retry_backoff_start_s, settings.retry_backoff_max_s),
                                          self.metrics)
        #: set once the group has given this consumer partitions
        self.ready = threading.Event()
        self.membership = MembershipCheck(settings, self.kafka)
        #: the serving set of the last batch, as text (a change is logged as a switch)
        self._serving = ""

    def breakdown_ms(self) -> dict[str, float]:
        """Milliseconds per batch by phase, the loop's and the backend's, in the order of a batch."""
        batches = self.timings.batches
        if not batches:
            return {}
        seconds = self.timings.seconds | self.backend.timings.seconds
        order = ["decode", "insert", "score", "predictions", "offsets", "commit", "encode", "produce", "flush",
                 "kafka-commit"]
        names = [n for n in order if n in seconds] + [n for n in seconds if n not in order]
        return {name: 1000 * seconds[name] / batches for name in names}

    @property
    def consumer(self) -> Consumer:
        if self._consumer is None:
            raise RuntimeError("scorer not started")
        return self._consumer

    def health(self) -> tuple[bool, list[str]]:
        """/healthz: Kafka reachable and no owned partition stalled."""
        kafka_ok, kafka_problems = self.kafka.health()
        ok, problems = self.watchdog.health()
        return ok and kafka_ok, kafka_problems + problems

    # -- run ---------------------------------------------------------------------------------
    def run(self) -> ScorerStats:
        """Consume until stopped. A permanent error stops the loop and propagates."""
        limit_blas_threads(self.settings.blas_threads)
        if self.settings.metrics_port:
            self.metrics_server = MetricsServer(self.metrics, self.health, self.settings.metrics_port,
                                                self.metrics_host)
        try:
            if not self.outages.retrying(self._open_backend, "connecting to the database"):
                return self.stats
            self._publisher = Publisher(lambda on_error: self.producer_factory(self.settings, error_cb=on_error),
                                        self.settings.predictions_topic, self.settings.dlq_topic,
                                        self.backend.name, self.metrics, self.kafka.on_error, self.timings)
            self._wait_for_model()
            if self.stop.is_set():
                return self.stats
            self._consumer = self.consumer_factory(self.settings, self.settings.group, error_cb=self.kafka.on_error)
            checkpoint = Checkpoint(self.settings, self.backend, self.partitions, self._publisher, self.outages,
                                    self.kafka, lambda: self.consumer, self.stats, self.metrics,
                                    fault=self.fault, on_batch=self.on_batch, timings=self.timings)
            self._subscribe()
            tune_gc_for_streaming()
            while not self.stop.is_set():
                self._switch_model_or_maintain()
                self.partitions.revoked.clear()
                messages = collect(self.consumer, self.settings.batch_size, self.settings.linger_ms, self.stop)
                revoked = self.partitions.revoked
                messages = [m for m in messages if source_of(m)[:2] not in revoked]
                if messages:
                    serving = self.watcher.serving_set()
                    if serving is None:
                        raise RuntimeError("no model to score with")
                    checkpoint.commit(messages, serving)
                self._between_batches()
        except StreamscoreError as exc:
            if exc.retriable:
                raise
            self.stats.fatal = exc.message
            what = "a permanent database error" if isinstance(exc, BackendError) else "an error"
            log.error("stopping on %s (%s): %s -- nothing of the batch in hand was committed; fix the cause and "
                      "restart, the consumer resumes from the stored offsets", what, exc.reason, exc.message,
                      extra=event("fatal", reason=exc.reason, error=exc.message))
            raise
        finally:
            self._shutdown()
        return self.stats

    def _open_backend(self) -> None:
        self.backend.connect()
        self.backend.init_schema()

    def _subscribe(self) -> None:
        self.consumer.subscribe([self.settings.images_topic], on_assign=self._on_assign,
                                on_revoke=self._on_revoke, on_lost=self._on_revoke)
        log.info("subscribed to %s as group %s; waiting for partitions", self.settings.images_topic,
                 self.settings.group, extra=event("subscribed", topic=self.settings.images_topic,
                                                  group=self.settings.group))

    def _shutdown(self) -> None:
        if self._publisher is not None:
            try:
                left = self._publisher.close(10)
                if left:
                    log.warning("on shutdown: %d record(s) not delivered to Kafka; their batch is replayed "
                                "on the next start", left)
            except Exception as exc:
                log.warning("on shutdown: %s", exc)
        # drop the clients: a producer kept alive after its broker is gone logs reconnect attempts
        self._publisher = None
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        self.watcher.shutdown()
        self.backend.close()
        if self.metrics_server is not None:
            self.metrics_server.close()

    # -- models ------------------------------------------------------------------------------
    def _wait_for_model(self) -> None:
        if not self.outages.retrying(self.watcher.resume_from_database, "reading installed models"):
            return
        announced = False
        since = time.monotonic()
        retry = self.outages.retry()
        while self.watcher.current is None and not self.stop.is_set():
            if not announced and time.monotonic() - since > 2:
                log.warning("no model yet: waiting for one on %s (publish one with "
                            "`streamscore publish-model PATH`); images stay on Kafka uncommitted",
                            self.settings.models_topic,
                            extra=event("waiting-for-model", topic=self.settings.models_topic))
                announced = True
            try:
                self.watcher.poll(0.5)
            except BackendUnavailable as exc:  # the candidate stays pending in the watcher
                self.outages.database_down(exc, "installing a model", retry)
        self._set_model()

    def _switch_model_or_maintain(self) -> None:
        """Between two batches: a model swap, or else the database's housekeeping (Backend.maintain), never
        both in one gap: each pauses the stream, and the two pauses would add up."""
        installs = self.watcher.installs
        self._switch_model()
        if self.watcher.installs == installs:
            try:
                self.backend.maintain()
            except BackendUnavailable as exc:  # the next batch meets the outage and handles it
                log.warning("database housekeeping skipped: %s", exc.message)

    def _switch_model(self) -> None:
        """Between two batches: take a newer verified model if one has arrived.

        An install that a database outage interrupts is tried again after a backoff
        (:mod:`.install_retry`), never given up; the current version scores meanwhile.
        """
        self.rejections.send()  # model-rejected records whose delivery failed
        if not self.install_retry.due():
            return
        try:
            self.watcher.poll(0)
        except BackendUnavailable as exc:
            self.install_retry.failed(exc, self.watcher.pending_version, self.stats.model_version)
            return
        self.install_retry.succeeded()
        self._set_model()

    def _set_model(self) -> None:
        serving = self.watcher.serving_set()
        if serving is not None and str(serving) != self._serving:
            version = serving.served_ref.version
            if self._serving:
                log.info("switched to %s between two batches (was %s)", serving, self._serving,
                         extra=event("model-switched", model=serving.served_ref.name, version=version,
                                     previous=self.stats.model_version, serving=str(serving)))
            self._serving = str(serving)
            self.stats.model_version = version
            self.metrics.model_version.set(version)

    # -- between batches: lag, Kafka reachability, group membership -------------------------
    def _between_batches(self) -> None:
        consumer = self.consumer
        self.partitions.observe(consumer)
        now = time.monotonic()
        if self.membership.due(now) and self.membership.check(consumer, now):
            self._resubscribe(consumer)

    def _resubscribe(self, consumer: Consumer) -> None:
        """A fresh consumer in the group (see .membership: a stale client's metadata cache never recovers)."""
        topic, vanished = self.settings.images_topic, self.membership.topic_vanished
        log.warning("re-subscribing to %s with a new consumer: %s", topic,
                    "the topic was deleted and created again" if vanished else
                    "the group did not give the partitions back after a Kafka outage",
                    extra=event("resubscribed", topic=topic, topic_vanished=vanished))
        if vanished:
            self.watcher.close()  # its models-topic reader has the same stale cache: read the topic anew
        consumer.close()
        self._consumer = self.consumer_factory(self.settings, self.settings.group, error_cb=self.kafka.on_error)
        self._subscribe()
        self.membership.resubscribed()

    # -- rebalance ---------------------------------------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Start each new partition at the lower of the database's and Kafka's offsets (see .partitions)."""
        if not partitions:
            return  # cooperative rebalance that gives this consumer nothing new
        stored: dict[int, int] = {}
        try:
            stored = self.backend.stored_offsets(self.settings.group, self.settings.images_topic)
        except BackendUnavailable as exc:
            log.warning("on assignment: database unavailable (%s); using Kafka offsets", exc.message)
        try:
            committed = consumer.committed(partitions, timeout=10)
        except KafkaException as exc:  # Kafka flapping: an exception here would escape from poll()
            log.warning("on assignment: committed offsets unavailable (%s); starting from them when Kafka answers",
                        exc)
            committed = None
        self.partitions.assign(partitions, stored, committed or [])
        if committed is None:
            for tp in partitions:
                tp.offset = OFFSET_INVALID  # librdkafka fetches the committed offset itself
        self.ready.set()
        log.info("assigned %s%s", ", ".join(f"{tp.partition}@{tp.offset}" for tp in partitions),
                 " (paused: database unavailable)" if self.stats.paused else "",
                 extra=event("assigned", partitions=[tp.partition for tp in partitions], paused=self.stats.paused))
        try:
            consumer.incremental_assign(partitions)
        except KafkaException:
            consumer.assign(partitions)
        if self.stats.paused:
            consumer.pause(partitions)
        else:
            # librdkafka keeps a partition's pause flag across a lost-and-reassigned cycle (Kafka outage)
            consumer.resume(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Drop what we hold of revoked partitions: their new owner replays from committed offsets."""
        self.partitions.revoke(partitions)
        log.info("revoked %s", ", ".join(str(tp.partition) for tp in partitions),
                 extra=event("revoked", partitions=[tp.partition for tp in partitions]))
