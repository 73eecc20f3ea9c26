"""One batch from Kafka messages to the Kafka offset commit, in the order the guarantees need.

:meth:`Checkpoint.commit` is the only place that order lives (DESIGN.md, delivery
guarantees); outages are ridden out by :class:`.outage.OutageHandler`, so a batch is
either carried through every step or, when the scorer is stopped half-way, left
uncommitted on Kafka and replayed by the next owner (the database absorbs it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from streamscore.backends.base import Backend, ImageBatch, ScoredBatch, ServingSet, TopicPartitionKey
from streamscore.consumers.batching import Rejected, build_batch, id_conflict
from streamscore.consumers.kafka_link import KafkaLink
from streamscore.consumers.metrics import ScorerMetrics, ScorerStats
from streamscore.consumers.outage import OutageHandler
from streamscore.consumers.partitions import Partitions
from streamscore.consumers.publisher import Publisher, Source, source_of
from streamscore.errors import BackendDataError, BackendUnavailable
from streamscore.shared.config import Settings
from streamscore.shared.timing import PhaseTimes

log = logging.getLogger(__name__)

#: called with a named point of the commit order; tests pass one that crashes the process there
FaultHook = Callable[[str], None]
#: longest single wait for Kafka acknowledgements before the loop pauses and serves the group
FLUSH_STEP_S = 5.0
#: flush attempts without acknowledgements, Kafka answering metadata requests, before the producer is replaced
STUCK_FLUSHES = 3


class BySource:
    """The batch's messages by (topic, partition, offset), indexed on first use: only refused rows need it."""

    def __init__(self, messages: list[Message]) -> None:
        self._messages = messages
        self._index: dict[Source, Message] | None = None

    def __getitem__(self, source: Source) -> Message:
        if self._index is None:
            self._index = {source_of(m): m for m in self._messages}
        return self._index[source]


class Checkpoint:
    """Carries one batch through the database and Kafka (one instance per scorer, reused)."""

    def __init__(self, settings: Settings, backend: Backend, partitions: Partitions, publisher: Publisher,
                 outages: OutageHandler, kafka: KafkaLink, consumer: Callable[[], Consumer],
                 stats: ScorerStats, metrics: ScorerMetrics, *, fault: FaultHook | None = None,
                 on_batch: Callable[[ScoredBatch], None] | None = None, timings: PhaseTimes | None = None) -> None:
        self.settings = settings
        self.backend = backend
        self.partitions = partitions
        self.publisher = publisher
        self.outages = outages
        self.kafka = kafka
        self.consumer = consumer
        self.stats = stats
        self.metrics = metrics
        self.fault = fault
        self.on_batch = on_batch
        #: time per step (decode, flush, kafka-commit; the backend and publisher time theirs)
        self.timings = timings or PhaseTimes()

    def commit(self, messages: list[Message], model: ServingSet) -> bool:
        """Store, score, publish and commit ``messages``; False when stopped before the end.

        1. decode; undecodable messages are set aside for the DLQ;
        2. database write: images, in-database scores of every version in force (``model``:
           served and shadows), predictions and next offsets in one transaction, retried
           through outages (partitions paused meanwhile); a data error
           bisects the batch so only the refused rows are set aside; rows of partitions
           revoked meanwhile are left out;
        3. when the batch was split, trimmed or held only dead letters: store its offsets on
           their own, so that a restart does not re-read the refused rows;
        4. (the ``after-db-commit`` fault point, tests only);
        5. produce the dead letters and one prediction per image, then flush until Kafka has
           acknowledged every one (partitions paused while it does not; nothing is dropped);
        6. commit the Kafka offsets of the partitions still owned.

        A crash after 2 replays the batch: the database absorbs it (idempotent keys) and its
        predictions are sent again (at-least-once; the evaluator de-duplicates).
        """
        started = time.monotonic()
        with self.timings.phase("decode"):
            batch, rejected = build_batch(messages)  # 1
        self.stats.consumed += len(messages)
        self.metrics.consumed.inc(len(messages))
        by_source = BySource(messages)
        outcome = self._write(batch, model, by_source)  # 2
        if outcome is None:
            return False
        writes, refused = outcome
        scored = [result for results in writes for result in results]
        refused += self._conflicts(batch, scored, by_source)
        revoked = self.partitions.revoked
        if len(writes) != 1 or refused or revoked:  # 3
            offsets = {k: v for k, v in batch.offsets.items() if k not in revoked}
            if offsets and not self.outages.retrying(
                    lambda: self.backend.store_offsets(self.settings.group, offsets), "storing offsets"):
                return False
        if self.fault is not None:  # 4
            self.fault("after-db-commit")
        owned = [r for r in rejected if source_of(r.message)[:2] not in revoked]
        if not self._publish(batch, scored, owned + refused):  # 5
            return False
        with self.timings.phase("kafka-commit"):
            self._commit_kafka(batch.offsets)  # 6
        self.timings.batch_done()
        self.metrics.batch_seconds.observe(time.monotonic() - started)
        return True

    # -- step 2 ------------------------------------------------------------------------------
    def _write(self, batch: ImageBatch, model: ServingSet, by_source: BySource
               ) -> tuple[list[list[ScoredBatch]], list[Rejected]] | None:
        retry = self.outages.retry()
        while not self.outages.stop.is_set():
            if self.partitions.revoked:
                keep = [i for i, s in enumerate(batch.sources)
                        if (s.topic, s.partition) not in self.partitions.revoked]
                batch = batch.subset(keep)
            if not len(batch):
                self.outages.resume()
                return [], []
            try:
                result = self._bisect(batch, model, by_source)
            except BackendUnavailable as exc:
                self.outages.database_down(exc, f"writing a batch of {len(batch)}", retry)
                continue
            self.outages.resume()
            return result
        return None

    def _bisect(self, batch: ImageBatch, model: ServingSet, by_source: BySource
                ) -> tuple[list[list[ScoredBatch]], list[Rejected]]:
        """Write the batch; on a data error split it in halves until the bad rows are isolated.

        At most 2n-1 transactions for n rows, so a batch's work stays bounded. One list of results
        per transaction: the served one first, then one per shadow.
        """
        try:
            return [self.backend.write_set(batch, model, self.settings.group)], []
        except BackendDataError as exc:
            if len(batch) == 1:
                source = batch.sources[0]
                message = by_source[(source.topic, source.partition, source.offset)]
                return [], [Rejected(message, exc.reason, exc.message, "database")]
            middle = len(batch) // 2
            left = self._bisect(batch.subset(range(middle)), model, by_source)
            right = self._bisect(batch.subset(range(middle, len(batch))), model, by_source)
            return left[0] + right[0], left[1] + right[1]

    def _conflicts(self, batch: ImageBatch, scored: list[ScoredBatch], by_source: BySource
                   ) -> list[Rejected]:
        """The messages whose id the database already holds with other content (dead-lettered)."""
        ids = {image_id for result in scored for image_id in result.conflicts}
        if not ids:
            return []
        return [id_conflict(by_source[(s.topic, s.partition, s.offset)], "stored")
                for image_id, s in zip(batch.image_ids, batch.sources, strict=True)
                if image_id in ids and (s.topic, s.partition) not in self.partitions.revoked]

    # -- steps 5 and 6 -----------------------------------------------------------------------
    def _publish(self, batch: ImageBatch, scored: list[ScoredBatch], rejected: list[Rejected]) -> bool:
        per_version = self.publisher.publish(batch, scored, rejected)
        retry = self.outages.retry()
        unanswered = 0
        flush_started = time.perf_counter()
        while self.publisher.flush(FLUSH_STEP_S):
            if self.outages.stop.is_set():
                log.warning("stopped with %d record(s) of a committed batch not acknowledged by Kafka; "
                            "its Kafka offsets stay uncommitted, so the next start sends them again",
                            self.publisher.pending)
                return False
            unanswered += 1
            if unanswered >= STUCK_FLUSHES and self._kafka_answers():
                log.warning("Kafka answers, but %d record(s) stay unacknowledged (a broker restart loses the "
                            "producer's state): sending them again on a new producer", self.publisher.pending)
                self.publisher.replace_producer()
                unanswered = 0
            self.outages.kafka_down(f"delivering {self.publisher.pending} record(s)", retry)
        self.timings.add("flush", time.perf_counter() - flush_started)
        if retry.backoff.attempts:
            self.kafka.restored()  # records held through the outage are acknowledged: Kafka answers again
        self.outages.resume()
        for version, count in per_version.items():
            self.stats.per_version[version] = self.stats.per_version.get(version, 0) + count
            self.stats.scored += count
        self.stats.dead_lettered += len(rejected)
        self.stats.batches += 1
        self.metrics.batches.inc()
        if self.on_batch is not None:
            for result in scored:
                self.on_batch(result)
        return True

    def _kafka_answers(self) -> bool:
        try:
            self.consumer().list_topics(self.settings.predictions_topic, timeout=2.0)
        except KafkaException:
            return False
        return True

    def _commit_kafka(self, next_offsets: dict[TopicPartitionKey, int]) -> None:
        offsets = [
            TopicPartition(topic, partition, offset)
            for (topic, partition), offset in next_offsets.items()
            if (topic, partition) not in self.partitions.revoked
        ]
        if not offsets:
            return
        self.partitions.committed(offsets)
        try:
            self.consumer().commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # the rows and offsets are in the database already; the next owner seeks there
            log.warning("Kafka offset commit failed (%s); the database offsets cover it", exc)
