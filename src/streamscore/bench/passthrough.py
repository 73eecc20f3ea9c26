"""Raw Kafka pass-through: consume the images and re-produce them, no database.

This is the ceiling the full pipeline is compared with: same broker, same
client settings, same batches (the scorer's collector: a first message, then
what is queued, up to the batch size), only the database work is missing.
"""

from __future__ import annotations

import threading
import time
import uuid

from confluent_kafka import TopicPartition

from streamscore.consumers.collector import collect
from streamscore.shared.config import Settings
from streamscore.shared.kafka import flush, make_consumer, make_producer
from streamscore.shared.messages import position


def passthrough_rate(settings: Settings, source_topic: str, images: int) -> float:
    """Images/s from the first batch received to the last one re-produced and flushed."""
    consumer = make_consumer(settings, f"bench-passthrough-{uuid.uuid4().hex[:8]}")
    producer = make_producer(settings)
    target = f"{source_topic}.copy"
    consumer.subscribe([source_topic])
    never = threading.Event()
    seen = 0
    first: float | None = None
    first_batch = 0
    try:
        deadline = time.monotonic() + 120
        while seen < images and time.monotonic() < deadline:
            messages = collect(consumer, settings.batch_size, settings.linger_ms, never)
            if not messages:
                continue
            if first is None:
                first, first_batch = time.monotonic(), len(messages)
            for message in messages:
                while True:
                    try:
                        producer.produce(target, key=message.key(), value=message.value(),
                                         headers=message.headers())
                        break
                    except BufferError:
                        producer.poll(0.05)
            flush(producer)
            topic, partition, offset = position(messages[-1])
            consumer.commit(offsets=[TopicPartition(topic, partition, offset + 1)], asynchronous=False)
            seen += len(messages)
        elapsed = time.monotonic() - (first or time.monotonic())
    finally:
        consumer.close()
    return (seen - first_batch) / elapsed if elapsed > 0 else 0.0
