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
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaException, Message, Producer, TopicPartition

from streamscore.backends.base import Backend, ImageBatch, ModelRef, ScoredBatch
from streamscore.consumers.batching import Rejected, build_batch, next_offsets
from streamscore.consumers.model_watcher import ModelWatcher
from streamscore.errors import BackendDataError, BackendUnavailable
from streamscore.shared.config import Settings
from streamscore.shared.kafka import flush, make_consumer, make_producer
from streamscore.shared.messages import Prediction, dlq_headers

log = logging.getLogger(__name__)

#: test-only crash points (STREAMSCORE_FAULT_POINT); the process exits at once, like SIGKILL
FAULT_ENV = "STREAMSCORE_FAULT_POINT"


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


class Scorer:
    """Runs until ``stop`` is set (or SIGINT/SIGTERM via the CLI); finishes the batch in hand."""

    def __init__(
        self,
        settings: Settings,
        backend: Backend,
        *,
        stop: threading.Event | None = None,
        on_batch: Callable[[ScoredBatch], None] | None = None,
    ) -> None:
        self.settings = settings
        self.backend = backend
        self.stop = stop or threading.Event()
        self.on_batch = on_batch
        self.stats = ScorerStats()
        self.watcher = ModelWatcher(settings, backend)
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._pending: list[Message] = []
        self._assigned: set[tuple[str, int]] = set()
        self._revoked: set[tuple[str, int]] = set()
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

    def _retrying(self, action: Callable[[], object], what: str) -> None:
        """Run a database call until it succeeds, backing off while the database is down."""
        delay = self.settings.retry_backoff_start_s
        while not self.stop.is_set():
            try:
                action()
                return
            except BackendUnavailable as exc:
                log.warning("%s: %s; retrying in %.1fs", what, exc.message, delay)
                self._wait(delay)
                delay = min(self.settings.retry_backoff_max_s, delay * 2)
                self._reconnect()

    def run(self) -> ScorerStats:
        """Consume until stopped. Fatal backend errors propagate with their message."""
        self._retrying(self._open_backend, "connecting to the database")
        self._producer = make_producer(self.settings)
        try:
            self._wait_for_model()
            if self.stop.is_set():
                return self.stats
            self._consumer = make_consumer(self.settings, self.settings.group)
            self.consumer.subscribe(
                [self.settings.images_topic], on_assign=self._on_assign,
                on_revoke=self._on_revoke, on_lost=self._on_revoke,
            )
            while not self.stop.is_set():
                self._switch_model()
                messages = self._collect()
                if messages:
                    self._process(messages)
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
        self._retrying(self.watcher.resume_from_database, "reading installed models")
        announced = False
        since = time.monotonic()
        while self.watcher.current is None and not self.stop.is_set():
            if not announced and time.monotonic() - since > 2:
                log.warning("no model yet: waiting for one on %s (publish one with "
                            "`streamscore publish-model PATH`); images stay on Kafka uncommitted",
                            self.settings.models_topic)
                announced = True
            self.watcher.poll(0.5)
        self.stats.model_version = self.watcher.current.version if self.watcher.current else None

    def _switch_model(self) -> None:
        """Between two batches: take a newer verified model if one has arrived."""
        try:
            self.watcher.poll(0)
        except BackendUnavailable as exc:
            log.warning("model install postponed, database unavailable: %s", exc.message)
        if self.watcher.current is not None:
            self.stats.model_version = self.watcher.current.version

    def _shutdown(self) -> None:
        if self._producer is not None:
            try:
                flush(self._producer, 10)
            except Exception as exc:
                log.warning("on shutdown: %s", exc)
        if self._consumer is not None:
            self._consumer.close()
        self.watcher.close()
        self.backend.close()

    # -- rebalance ---------------------------------------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Seek each new partition to where both the database and Kafka agree work is done."""
        stored: dict[int, int] = {}
        try:
            stored = self.backend.stored_offsets(self.settings.group, self.settings.images_topic)
        except BackendUnavailable as exc:
            log.warning("on assignment: database unavailable (%s); using Kafka offsets", exc.message)
        committed = {tp.partition: tp.offset for tp in consumer.committed(partitions, timeout=10)}
        for tp in partitions:
            positions = [o for o in (stored.get(tp.partition), committed.get(tp.partition)) if o is not None and o >= 0]
            if positions:
                # the lower one: a batch the DB holds but whose predictions were not yet
                # sent (crash before the Kafka commit) is replayed, and absorbed by the DB
                tp.offset = min(positions)
            self._assigned.add((tp.topic, tp.partition))
            self._revoked.discard((tp.topic, tp.partition))
        self.ready.set()
        log.info("assigned %s", ", ".join(f"{tp.partition}@{tp.offset}" for tp in partitions))
        try:
            consumer.incremental_assign(partitions)
        except KafkaException:
            consumer.assign(partitions)
        if self.stats.paused:
            consumer.pause(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Drop what we hold of revoked partitions: their new owner replays from committed offsets."""
        gone = {(tp.topic, tp.partition) for tp in partitions}
        self._assigned -= gone
        self._revoked |= gone
        self._pending = [m for m in self._pending if (m.topic(), m.partition()) not in gone]
        log.info("revoked %s", ", ".join(str(tp.partition) for tp in partitions))

    # -- one batch ---------------------------------------------------------------------------
    def _collect(self) -> list[Message]:
        self._pending = []
        limit = self.settings.batch_size
        deadline: float | None = None
        while len(self._pending) < limit and not self.stop.is_set():
            if deadline is None:
                # wait for the first message only: consume() would hold it until the batch fills
                first = self.consumer.poll(0.25)
                arrived = [first] if first is not None else []
            else:
                arrived = self.consumer.consume(limit - len(self._pending), max(0.0, deadline - time.monotonic()))
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
        batch, rejected = build_batch(messages)
        self.stats.consumed += len(messages)
        model = self.watcher.current_ref
        if model is None:
            raise RuntimeError("no model to score with")
        self._revoked.clear()
        by_source = {(m.topic(), m.partition(), m.offset()): m for m in messages}
        outcome = self._write(batch, model, by_source)
        if outcome is None:
            return  # stopped while the database was down: commit nothing, replay later
        scored, refused = outcome
        if len(scored) != 1:
            # dead letters only, or a bisected batch: the offsets of the whole batch are
            # stored on their own so a restart does not re-read the refused rows
            offsets = {k: v for k, v in batch.offsets.items() if k not in self._revoked}
            self._retrying(lambda: self.backend.store_offsets(self.settings.group, offsets),
                           "storing offsets")
        self._fault_point("after-db-commit")
        self._emit(batch, scored, rejected + refused)
        self._commit(messages)

    def _write(
        self, batch: ImageBatch, model: ModelRef, by_source: dict[tuple[str, int, int], Message]
    ) -> tuple[list[ScoredBatch], list[Rejected]] | None:
        """Write with retries on outages; rows of partitions revoked meanwhile are left out.

        Returns None when stopped before the database accepted the batch.
        """
        delay = self.settings.retry_backoff_start_s
        while not self.stop.is_set():
            if self._revoked:
                keep = [i for i, s in enumerate(batch.sources) if (s.topic, s.partition) not in self._revoked]
                batch = batch.subset(keep)
            if not len(batch):
                return [], []
            try:
                result = self._bisect(batch, model, by_source)
                self._resume()
                return result
            except BackendUnavailable as exc:
                self.stats.retries += 1
                log.warning("database unavailable: %s; partitions paused, retry in %.1fs",
                            exc.message, delay)
                self._pause()
                self._wait(delay * random.uniform(0.8, 1.2))
                delay = min(self.settings.retry_backoff_max_s, delay * 2)
                self._reconnect()
        return None

    def _bisect(
        self, batch: ImageBatch, model: ModelRef, by_source: dict[tuple[str, int, int], Message]
    ) -> tuple[list[ScoredBatch], list[Rejected]]:
        """Write the batch; on a data error split it in halves until the bad rows are isolated."""
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

    def _emit(self, batch: ImageBatch, scored: list[ScoredBatch], rejected: list[Rejected]) -> None:
        producer = self.producer
        for item in rejected:
            self._dead_letter(item)
        row_of = {image_id: row for row, image_id in enumerate(batch.image_ids)}
        for result in scored:
            for i, image_id in enumerate(result.image_ids):
                row = row_of[image_id]
                label = int(batch.labels[row])
                prediction = Prediction(
                    image_id=image_id,
                    predicted=int(result.predicted[i]),
                    probabilities=tuple(float(p) for p in result.probabilities[i]),
                    label=None if label < 0 else label,
                    model_name=result.model.name,
                    model_version=result.model.version,
                    role="champion",
                    backend=self.backend.name,
                    produced_at=int(batch.produced_at[row]),
                    scored_at=int(result.scored_at[i]),
                )
                self._produce(self.settings.predictions_topic, image_id.encode(),
                              prediction.to_json(), prediction.headers())
            self.stats.scored += len(result.image_ids)
            self.stats.per_version[result.model.version] = (
                self.stats.per_version.get(result.model.version, 0) + len(result.image_ids)
            )
            if self.on_batch is not None:
                self.on_batch(result)
        flush(producer)
        self.stats.batches += 1

    def _dead_letter(self, item: Rejected) -> None:
        message = item.message
        headers = dlq_headers(
            reason=item.reason, message=item.text, stage=item.stage, topic=message.topic(),
            partition=message.partition(), offset=message.offset(),
        ) + [(k, v or b"") for k, v in (message.headers() or [])]
        self._produce(self.settings.dlq_topic, message.key(), message.value(), headers)
        self.stats.dead_lettered += 1
        log.info("dead-lettered %s[%d]@%d: %s", message.topic(), message.partition(),
                 message.offset(), item.reason)

    def _produce(self, topic: str, key: bytes | None, value: bytes | None,
                 headers: list[tuple[str, bytes]]) -> None:
        while True:
            try:
                self.producer.produce(topic, key=key, value=value, headers=headers)
                return
            except BufferError:
                self.producer.poll(0.1)

    def _commit(self, messages: list[Message]) -> None:
        offsets = [
            TopicPartition(topic, partition, offset)
            for (topic, partition), offset in next_offsets(messages).items()
            if (topic, partition) not in self._revoked
        ]
        if not offsets:
            return
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # the rows and offsets are in the database already; the next owner seeks there
            log.warning("Kafka offset commit failed (%s); the database offsets cover it", exc)

    # -- outage handling -------------------------------------------------------------------
    def _pause(self) -> None:
        if not self.stats.paused and self._consumer is not None:
            self.consumer.pause(self.consumer.assignment())
            self.stats.paused = True

    def _resume(self) -> None:
        if self.stats.paused and self._consumer is not None:
            self.consumer.resume(self.consumer.assignment())
            self.stats.paused = False

    def _wait(self, seconds: float) -> None:
        """Sleep while serving the group protocol (no eviction); hand back what arrives."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self.stop.is_set():
            if self._consumer is None:
                time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
                continue
            for message in self.consumer.consume(100, min(0.2, max(0.0, deadline - time.monotonic()))):
                if not message.error():
                    # from a partition assigned during the outage: rewind it for later
                    self.consumer.seek(TopicPartition(message.topic(), message.partition(), message.offset()))
                    self.consumer.pause([TopicPartition(message.topic(), message.partition())])

    def _fault_point(self, name: str) -> None:
        if self._fault == name:
            log.error("fault point %s reached: exiting (test only)", name)
            os._exit(137)

