"""Between batches: does Kafka answer, and does the group still give this consumer its partitions?

After a broker restart librdkafka logged "partition count changed from 4 to 0" and never
fetched again: the recreated topic's leader epochs are older than the ones the client
cached, so it waits for metadata that never comes. A new client has no such cache, so
:meth:`MembershipCheck.check` says when the scorer should start a fresh consumer.
"""

from __future__ import annotations

import logging

from confluent_kafka import Consumer, KafkaException

from streamscore.consumers.kafka_link import KafkaLink
from streamscore.shared.config import Settings
from streamscore.shared.kafka import partition_count

log = logging.getLogger(__name__)

#: seconds between two checks that Kafka answers and still gives us partitions (faster while it does not)
MEMBERSHIP_CHECK_S = 5.0
MEMBERSHIP_CHECK_DOWN_S = 1.0


class MembershipCheck:
    """State of the probes: when the last ran, whether the topic vanished, since when the group is suspect."""

    def __init__(self, settings: Settings, kafka: KafkaLink) -> None:
        self.settings, self.kafka = settings, kafka
        self.checked_at = 0.0
        self.restorations_seen = 0
        #: the topic had no partitions at the last probe (deleted, or a broker restarted without its data)
        self.topic_vanished = False
        self.suspect_since: float | None = None

    def due(self, now: float) -> bool:
        """Time for a probe (every MEMBERSHIP_CHECK_S, faster while Kafka is down or the group suspect)."""
        every = MEMBERSHIP_CHECK_DOWN_S if self.kafka.unreachable or self.suspect_since else MEMBERSHIP_CHECK_S
        if now - self.checked_at < every:
            return False
        self.checked_at = now
        return True

    def check(self, consumer: Consumer, now: float) -> bool:
        """Probe Kafka; True when a fresh consumer should subscribe (the topic was created again, or the
        group forgot us after an outage); then :meth:`resubscribed` once it has."""
        topic = self.settings.images_topic
        try:
            count = partition_count(consumer, topic, timeout=2.0)
        except KafkaException as exc:
            self.kafka.lost(f"metadata request failed: {exc}")
            return False
        self.kafka.restored()
        if count == 0:
            if not self.topic_vanished:
                log.warning("topic %s has no partitions (deleted, or the broker restarted without its data); "
                            "waiting for it to come back", topic)
            self.topic_vanished = True
            return False
        if self.kafka.restorations != self.restorations_seen:
            self.restorations_seen = self.kafka.restorations
            self.suspect_since = self.suspect_since or now
        assignment = consumer.assignment()
        healthy = bool(assignment) and all(tp.partition < count for tp in assignment)
        grace = self.settings.session_timeout_ms / 1000
        if self.topic_vanished or (self.suspect_since is not None and not healthy
                                   and now - self.suspect_since >= grace):
            return True
        if healthy:
            self.suspect_since = None
        return False

    def resubscribed(self) -> None:
        self.topic_vanished = False
        self.suspect_since = None
