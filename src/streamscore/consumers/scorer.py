"""The scoring loop: Kafka images → database (store + score in-DB) → evaluation topic.

One iteration handles one batch, in this order (the delivery guarantees of DESIGN.md):

1. switch to a newly verified model, if one arrived (so a batch sees one version);
2. collect up to ``batch_size`` messages or until ``linger_ms`` passes;
3. decode; undecodable messages are set aside for the DLQ;
4. one database transaction: images, in-DB scores, predictions, next offsets;
   on an outage pause the partitions, keep polling, back off and retry; on a data
   error bisect the batch so good rows commit and only the bad rows are set aside;
5. produce the DLQ messages and one prediction per image, and flush;
6. commit the Kafka offsets.

A crash between 4 and 6 replays the batch: the database absorbs it (idempotent
keys) and re-sends its predictions (at-least-once; the evaluator de-duplicates).
A permanent database error (schema missing, permission denied) stops the loop with
the error; nothing of the batch in hand is committed, so a restart loses nothing.
Outage handling lives in :mod:`.outage`, the stall watchdog in :mod:`.watchdog`,
Prometheus metrics in :mod:`.metrics`; docs/operations.md is the operator's view.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaException, Message, Producer, TopicPartition

from streamscore.backends.base import Backend, ImageBatch, ModelRef, ScoredBatch
from streamscore.consumers.batching import Rejected, build_batch, next_offsets
from streamscore.consumers.metrics import MetricsServer, ScorerMetrics
from streamscore.consumers.model_watcher import ModelWatcher
from streamscore.consumers.outage import Backoff
from streamscore.consumers.partitions import Partitions
from streamscore.consumers.publisher import Publisher, Source, source_of
from streamscore.consumers.watchdog import ProgressWatchdog
from streamscore.errors import BackendDataError, BackendError, BackendUnavailable
from streamscore.shared.config import Settings
from streamscore.shared.kafka import flush, make_consumer, make_producer

log = logging.getLogger(__name__)

#: test-only crash points (STREAMSCORE_FAULT_POINT); the process exits at once, like SIGKILL
FAULT_ENV = "STREAMSCORE_FAULT_POINT"

#: a batch closes early when no message arrived for this long (nothing is queued)
IDLE_GAP_S = 0.005


@dataclass
class ScorerStats:
    consumed: int = 0
    scored: int = 0
    dead_lettered: int = 0
    batches: int = 0
    retries: int = 0
    per_version: dict[int, int] = field(default_factory=dict)
    model_version: int | None = None
    paused: bool = False
    #: the permanent error that stopped the loop, if one did
    fatal: str | None = None


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
    ) -> None:
        self.settings = settings
        self.backend = backend
        self.stop = stop or threading.Event()
        self.on_batch = on_batch
        self.stats = ScorerStats()
        self.metrics = ScorerMetrics()
        self.watchdog = ProgressWatchdog(settings.stall_timeout_s)
        self.watcher = ModelWatcher(settings, backend)
        self.metrics_host = metrics_host
        self.metrics_server: MetricsServer | None = None
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._publisher: Publisher | None = None
        self._pending: list[Message] = []
        self.partitions = Partitions(self.watchdog, self.metrics)
        self._fault = os.environ.get(FAULT_ENV, "")
        #: set once the group has given this consumer partitions
        self.ready = threading.Event()

    # -- setup -------------------------------------------------------------------------------
    @property
    def consumer(self) -> Consumer:
        if self._consumer is None:
            raise RuntimeError("scorer not started")
        return self._consumer

    @property
    def producer(self) -> Producer:
        if self._producer is None:
            raise RuntimeError("scorer not started")
        return self._producer

    def _backoff(self) -> Backoff:
        return Backoff(self.settings.retry_backoff_start_s, self.settings.retry_backoff_max_s)

    def _retrying(self, action: Callable[[], object], what: str) -> bool:
        """Run a database call until it succeeds, pausing and backing off while the database is down.

        Returns False when stopped first. A permanent BackendError propagates.
        """
        backoff = self._backoff()
        while not self.stop.is_set():
            try:
                action()
            except BackendUnavailable as exc:
                self._outage(exc, what, backoff)
                continue
            self._resume()
            return True
        return False

    def _outage(self, exc: BackendUnavailable, what: str, backoff: Backoff) -> None:
        """One failed attempt: pause the partitions, wait (serving the group), reconnect."""
        delay = backoff.next()
        self.stats.retries += 1
        self.metrics.db_retries.inc()
        log.warning("database unavailable while %s: %s; partitions paused, retry %d in %.1fs",
                    what, exc.message, backoff.attempts, delay)
        self._pause()
        self._wait(delay)
        self._reconnect()

    def run(self) -> ScorerStats:
        """Consume until stopped. A permanent backend error stops the loop and propagates."""
        if self.settings.metrics_port:
            self.metrics_server = MetricsServer(self.metrics, self.watchdog.health,
                                                self.settings.metrics_port, self.metrics_host)
        try:
            if not self._retrying(self._open_backend, "connecting to the database"):
                return self.stats
            self._producer = make_producer(self.settings)
            self._publisher = Publisher(self._producer, self.settings.predictions_topic, self.settings.dlq_topic,
                                        self.backend.name, self.metrics)
            self._wait_for_model()
            if self.stop.is_set():
                return self.stats
            self._consumer = make_consumer(self.settings, self.settings.group)
            self.consumer.subscribe(
                [self.settings.images_topic], on_assign=self._on_assign,
                on_revoke=self._on_revoke, on_lost=self._on_revoke,
            )
            log.info("subscribed to %s as group %s; waiting for partitions",
                     self.settings.images_topic, self.settings.group)
            while not self.stop.is_set():
                self._switch_model()
                messages = self._collect()
                if messages:
                    self._process(messages)
                self.partitions.observe(self.consumer)
        except BackendError as exc:
            if exc.retriable:
                raise
            self.stats.fatal = exc.message
            log.error("stopping on a permanent database error (%s): %s -- nothing of the batch in hand "
                      "was committed; fix the cause and restart, the consumer resumes from the stored offsets",
                      exc.reason, exc.message)
            raise
        finally:
            self._shutdown()
        return self.stats

    def _open_backend(self) -> None:
        self.backend.connect()
        self.backend.init_schema()

    def _reconnect(self) -> None:
        self.backend.close()
        try:
            self.backend.connect()
        except BackendUnavailable as exc:
            log.debug("reconnect failed: %s", exc.message)

    def _wait_for_model(self) -> None:
        if not self._retrying(self.watcher.resume_from_database, "reading installed models"):
            return
        announced = False
        since = time.monotonic()
        backoff = self._backoff()
        while self.watcher.current is None and not self.stop.is_set():
            if not announced and time.monotonic() - since > 2:
                log.warning("no model yet: waiting for one on %s (publish one with "
                            "`streamscore publish-model PATH`); images stay on Kafka uncommitted",
                            self.settings.models_topic)
                announced = True
            try:
                self.watcher.poll(0.5)
            except BackendUnavailable as exc:
                self._outage(exc, "installing a model", backoff)
                self.watcher.close()  # re-read the models topic: the candidate was consumed
        self._set_model()

    def _switch_model(self) -> None:
        """Between two batches: take a newer verified model if one has arrived."""
        try:
            self.watcher.poll(0)
        except BackendUnavailable as exc:
            # the candidate was read but not installed: read the topic again next time
            log.warning("model install postponed, database unavailable: %s", exc.message)
            self.watcher.close()
        self._set_model()

    def _set_model(self) -> None:
        if self.watcher.current is not None:
            self.stats.model_version = self.watcher.current.version
            self.metrics.model_version.set(self.watcher.current.version)

    def _shutdown(self) -> None:
        if self._producer is not None:
            try:
                flush(self._producer, 10)
            except Exception as exc:
                log.warning("on shutdown: %s", exc)
        # drop the clients: a producer kept alive after its broker is gone logs reconnect attempts
        self._producer = None
        self._publisher = None
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        self.watcher.close()
        self.backend.close()
        if self.metrics_server is not None:
            self.metrics_server.close()

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
        self.partitions.assign(partitions, stored, consumer.committed(partitions, timeout=10))
        self.ready.set()
        log.info("assigned %s%s", ", ".join(f"{tp.partition}@{tp.offset}" for tp in partitions),
                 " (paused: database unavailable)" if self.stats.paused else "")
        try:
            consumer.incremental_assign(partitions)
        except KafkaException:
            consumer.assign(partitions)
        if self.stats.paused:
            consumer.pause(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Drop what we hold of revoked partitions: their new owner replays from committed offsets."""
        gone = self.partitions.revoke(partitions)
        self._pending = [m for m in self._pending if source_of(m)[:2] not in gone]
        log.info("revoked %s", ", ".join(str(tp.partition) for tp in partitions))

    # -- one batch ---------------------------------------------------------------------------
    def _collect(self) -> list[Message]:
        """One batch: up to ``batch_size`` messages.

        The batch closes when it is full, when ``linger_ms`` has passed since its first message,
        or when nothing more has arrived for ``IDLE_GAP_S``: under load batches fill up, and at
        low rates an image does not wait for company that is not coming (docs/decisions.md).
        """
        self._pending = []
        limit = self.settings.batch_size
        deadline: float | None = None
        while len(self._pending) < limit and not self.stop.is_set():
            if deadline is None:
                # wait for the first message only: consume() would hold it until the batch fills
                first = self.consumer.poll(0.25)
                arrived = [first] if first is not None else []
            else:
                left = deadline - time.monotonic()
                arrived = self.consumer.consume(limit - len(self._pending), max(0.0, min(left, IDLE_GAP_S)))
                if not arrived:
                    break
            for message in arrived:
                if message.error():
                    log.warning("images topic: %s", message.error())
                    continue
                self._pending.append(message)
            if not self._pending:
                return []  # nothing yet: give the loop a chance to switch models or stop
            if deadline is None:
                deadline = time.monotonic() + self.settings.linger_ms / 1000
            elif time.monotonic() >= deadline:
                break
        return self._pending

    def _process(self, messages: list[Message]) -> None:
        started = time.monotonic()
        batch, rejected = build_batch(messages)
        self.stats.consumed += len(messages)
        self.metrics.consumed.inc(len(messages))
        model = self.watcher.current_ref
        if model is None:
            raise RuntimeError("no model to score with")
        self.partitions.revoked.clear()
        by_source = {source_of(m): m for m in messages}
        outcome = self._write(batch, model, by_source)
        if outcome is None:
            return  # stopped while the database was down: commit nothing, replay later
        scored, refused = outcome
        if len(scored) != 1 or refused or self.partitions.revoked:
            # dead letters only, a bisected or a trimmed batch: the offsets of the whole batch
            # are stored on their own so that a restart does not re-read the refused rows
            offsets = {k: v for k, v in batch.offsets.items() if k not in self.partitions.revoked}
            if offsets and not self._retrying(
                    lambda: self.backend.store_offsets(self.settings.group, offsets), "storing offsets"):
                return
        self._fault_point("after-db-commit")
        owned = [r for r in rejected if source_of(r.message)[:2] not in self.partitions.revoked]
        self._publish(batch, scored, owned + refused)
        self._commit(messages)
        self.metrics.batch_seconds.observe(time.monotonic() - started)

    def _write(
        self, batch: ImageBatch, model: ModelRef, by_source: dict[Source, Message]
    ) -> tuple[list[ScoredBatch], list[Rejected]] | None:
        """Write with retries on outages; rows of partitions revoked meanwhile are left out.

        Returns None when stopped before the database accepted the batch.
        """
        backoff = self._backoff()
        while not self.stop.is_set():
            if self.partitions.revoked:
                keep = [i for i, s in enumerate(batch.sources) if (s.topic, s.partition) not in self.partitions.revoked]
                batch = batch.subset(keep)
            if not len(batch):
                self._resume()
                return [], []
            try:
                result = self._bisect(batch, model, by_source)
            except BackendUnavailable as exc:
                self._outage(exc, f"writing a batch of {len(batch)}", backoff)
                continue
            self._resume()
            return result
        return None

    def _bisect(
        self, batch: ImageBatch, model: ModelRef, by_source: dict[Source, Message]
    ) -> tuple[list[ScoredBatch], list[Rejected]]:
        """Write the batch; on a data error split it in halves until the bad rows are isolated.

        At most 2n-1 transactions for n rows, so a batch's work stays bounded.
        """
        try:
            return [self.backend.write_batch(batch, model, self.settings.group)], []
        except BackendDataError as exc:
            if len(batch) == 1:
                source = batch.sources[0]
                message = by_source[(source.topic, source.partition, source.offset)]
                return [], [Rejected(message, exc.reason, exc.message, "database")]
            middle = len(batch) // 2
            left = self._bisect(batch.subset(range(middle)), model, by_source)
            right = self._bisect(batch.subset(range(middle, len(batch))), model, by_source)
            return left[0] + right[0], left[1] + right[1]

    def _publish(self, batch: ImageBatch, scored: list[ScoredBatch], rejected: list[Rejected]) -> None:
        if self._publisher is None:
            raise RuntimeError("scorer not started")
        per_version = self._publisher.publish(batch, scored, rejected)
        for version, count in per_version.items():
            self.stats.per_version[version] = self.stats.per_version.get(version, 0) + count
            self.stats.scored += count
        self.stats.dead_lettered += len(rejected)
        self.stats.batches += 1
        self.metrics.batches.inc()
        if self.on_batch is not None:
            for result in scored:
                self.on_batch(result)

    def _commit(self, messages: list[Message]) -> None:
        offsets = [
            TopicPartition(topic, partition, offset)
            for (topic, partition), offset in next_offsets(messages).items()
            if (topic, partition) not in self.partitions.revoked
        ]
        if not offsets:
            return
        self.partitions.committed(offsets)
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # the rows and offsets are in the database already; the next owner seeks there
            log.warning("Kafka offset commit failed (%s); the database offsets cover it", exc)

    # -- outage handling and visibility ----------------------------------------------------
    def _pause(self) -> None:
        if not self.stats.paused and self._consumer is not None:
            self.consumer.pause(self.consumer.assignment())
            self.stats.paused = True
            self.metrics.paused.set(1)

    def _resume(self) -> None:
        if self.stats.paused and self._consumer is not None:
            self.consumer.resume(self.consumer.assignment())
            self.stats.paused = False
            self.metrics.paused.set(0)

    def _wait(self, seconds: float) -> None:
        """Sleep while serving the group protocol (rebalances, no eviction); nothing is consumed."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self.stop.is_set():
            step = min(0.2, max(0.0, deadline - time.monotonic()))
            if self._consumer is None:
                time.sleep(step)
                continue
            for message in self.consumer.consume(100, step):
                if message.error():
                    continue
                # fetched before the pause took effect: rewind it for later
                tp = TopicPartition(*source_of(message))
                try:
                    self.consumer.seek(tp)
                    self.consumer.pause([tp])
                except KafkaException as exc:
                    log.debug("rewinding %s: %s", tp, exc)
            self.partitions.observe(self.consumer)

    def _fault_point(self, name: str) -> None:
        if self._fault == name:
            log.error("fault point %s reached: exiting (test only)", name)
            os._exit(137)
