"""Kafka offsets of a drill's group and topic, read and reset with the admin and consumer clients."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from streamscore.shared.config import Settings
from streamscore.shared.kafka import make_consumer


def reset_group(settings: Settings, partitions: int) -> None:
    """Commit offset 0 for every partition of the images topic (the group must have no members)."""
    from confluent_kafka import ConsumerGroupTopicPartitions
    from confluent_kafka.admin import AdminClient

    from streamscore.shared.kafka import client_config

    admin = AdminClient(client_config(settings))
    request = ConsumerGroupTopicPartitions(
        settings.group, [TopicPartition(settings.images_topic, p, 0) for p in range(partitions)])
    for future in admin.alter_consumer_group_offsets([request]).values():
        future.result(timeout=15)

def committed_offsets(settings: Settings) -> dict[int, int]:
    """The group's committed offset per partition of the images topic (-1001 when none)."""
    consumer = make_consumer(settings, settings.group)  # never subscribes: reads commits only
    try:
        partitions = [TopicPartition(settings.images_topic, p) for p in range(settings.partitions)]
        return {tp.partition: tp.offset for tp in consumer.committed(partitions, timeout=10)}
    finally:
        consumer.close()


def end_offsets(settings: Settings, total: int, timeout: float = 30) -> dict[int, int]:
    """Next offset per partition after the last of ``total`` messages, found by reading them (not watermarks)."""
    consumer = make_consumer(settings, f"drill-ends-{uuid.uuid4().hex[:8]}")
    ends = {p: 0 for p in range(settings.partitions)}
    seen = 0
    try:
        consumer.assign([TopicPartition(settings.images_topic, p, OFFSET_BEGINNING) for p in ends])
        deadline = time.monotonic() + timeout
        while seen < total:
            if time.monotonic() > deadline:
                raise AssertionError(f"read {seen} of {total} messages of {settings.images_topic}")
            for message in consumer.consume(1000, 0.5):
                if not message.error():
                    seen += 1
                    partition, offset = int(message.partition() or 0), int(message.offset() or 0)
                    ends[partition] = max(ends[partition], offset + 1)
    finally:
        consumer.close()
    return ends
