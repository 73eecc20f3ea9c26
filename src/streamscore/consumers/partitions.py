"""Which partitions a scorer owns, where each one starts, how far each has got, and its lag.

On assignment a partition starts at the *lower* of the offset stored in the
database and the offset committed to Kafka: a batch the database holds whose
predictions were not yet sent (crash after the DB commit, before the Kafka commit)
is replayed, the database absorbs its rows and the predictions are sent again
(docs/decisions.md). Lag is the high watermark minus the committed offset; it
feeds the ``streamscore_consumer_lag`` gauge and the progress watchdog.
"""

from __future__ import annotations

import logging
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from streamscore.consumers.metrics import ScorerMetrics
from streamscore.consumers.watchdog import PartitionKey, ProgressWatchdog

log = logging.getLogger(__name__)

#: seconds between two lag refreshes (one watermark request per owned partition)
OBSERVE_EVERY_S = 2.0


def start_offset(stored: int | None, committed: int | None) -> int:
    """Where a newly assigned partition starts: the lower of the two offsets.

    No Kafka commit counts as "from the beginning", not as "unknown": a crash after the
    first DB commit of a partition, before its first Kafka commit, must re-send that
    batch's predictions too. The DB offset alone never moves a partition forward.
    """
    if committed is None or committed < 0:
        return OFFSET_BEGINNING
    if stored is None or stored < 0:
        return committed
    return min(stored, committed)


class Partitions:
    """The scorer's book of owned and revoked partitions (touched only by the loop thread)."""

    def __init__(self, watchdog: ProgressWatchdog, metrics: ScorerMetrics) -> None:
        self.watchdog = watchdog
        self.metrics = metrics
        self.owned: set[PartitionKey] = set()
        #: revoked since the batch in hand was collected: its rows there are not ours to write
        self.revoked: set[PartitionKey] = set()
        #: next offset per owned partition as committed (None: nothing committed yet)
        self.positions: dict[PartitionKey, int | None] = {}
        self._observed_at = 0.0

    def assign(self, partitions: list[TopicPartition], stored: dict[int, int],
               committed: list[TopicPartition]) -> None:
        """Set each partition's start offset (in place) and take ownership."""
        kafka = {tp.partition: tp.offset for tp in committed}
        for tp in partitions:
            tp.offset = start_offset(stored.get(tp.partition), kafka.get(tp.partition))
            key = (str(tp.topic), int(tp.partition))
            self.owned.add(key)
            self.revoked.discard(key)
            self.positions[key] = tp.offset if tp.offset >= 0 else None
        self._observed_at = 0.0  # refresh lag soon

    def revoke(self, partitions: list[TopicPartition]) -> set[PartitionKey]:
        gone = {(str(tp.topic), int(tp.partition)) for tp in partitions}
        self.owned -= gone
        self.revoked |= gone
        self.watchdog.forget(gone)
        for topic, partition in gone:
            self.positions.pop((topic, partition), None)
            self.metrics.forget_partition(topic, partition)
        return gone

    def committed(self, offsets: list[TopicPartition]) -> None:
        for tp in offsets:
            self.positions[(str(tp.topic), int(tp.partition))] = tp.offset

    def observe(self, consumer: Consumer) -> None:
        """Every few seconds: lag per owned partition → metrics and the watchdog (which logs stalls)."""
        now = time.monotonic()
        if now - self._observed_at < OBSERVE_EVERY_S:
            return
        self._observed_at = now
        for key in sorted(self.owned):
            try:
                low, high = consumer.get_watermark_offsets(TopicPartition(*key), timeout=1.0, cached=False)
            except KafkaException as exc:
                log.debug("watermarks of %s[%d]: %s", key[0], key[1], exc)
                continue
            position = self.positions.get(key)
            position = low if position is None else position
            lag = max(0, high - position)
            self.metrics.lag.labels(key[0], str(key[1])).set(lag)
            self.watchdog.observe(key, position, lag)
        stalled = {(s.topic, s.partition) for s in self.watchdog.check()}
        for key in self.owned:
            self.metrics.stalled.labels(key[0], str(key[1])).set(1 if key in stalled else 0)
