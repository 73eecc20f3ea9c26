"""Stream MNIST images to the images topic: key = image id, value = 784 bytes, headers per DESIGN."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError as RdKafkaError
from confluent_kafka import Message, Producer

from streamscore.producers.rate import TokenBucket
from streamscore.shared.config import Settings
from streamscore.shared.kafka import flush, make_producer
from streamscore.shared.messages import encode_image
from streamscore.shared.mnist import MnistSplit


@dataclass
class ProduceReport:
    sent: int = 0
    delivered: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def on_delivery(self, error: RdKafkaError | None, _msg: Message) -> None:
        if error is None:
            self.delivered += 1
        else:
            self.failed += 1
            if len(self.errors) < 10:
                self.errors.append(str(error))


def image_stream(split: MnistSplit, limit: int | None, loop: bool) -> Iterator[int]:
    """Indexes to send: the split in order, repeated with --loop, cut at --limit."""
    sent = 0
    while True:
        for index in range(len(split)):
            if limit is not None and sent >= limit:
                return
            yield index
            sent += 1
        if not loop:
            return


def produce_images(
    settings: Settings,
    split: MnistSplit,
    *,
    limit: int | None = None,
    rate: float | None = None,
    loop: bool = False,
    stop: threading.Event | None = None,
    progress: Callable[[int], None] | None = None,
    producer: Producer | None = None,
    **producer_overrides: Any,
) -> ProduceReport:
    """Send images; returns how many were delivered. Delivery errors are counted, never hidden.

    Pass a ``producer`` that has already delivered a message to skip the ~500 ms an idempotent
    producer spends obtaining its producer id before its first send.
    """
    producer = producer or make_producer(settings, **producer_overrides)
    report = ProduceReport()
    bucket = TokenBucket(rate) if rate else None
    for index in image_stream(split, limit, loop):
        if stop is not None and stop.is_set():
            break
        if bucket is not None:
            bucket.take()
        key, value, headers = encode_image(
            split.image_id(index), split.images[index].tobytes(), int(split.labels[index])
        )
        while True:
            try:
                producer.produce(
                    settings.images_topic, value=value, key=key, headers=headers,
                    on_delivery=report.on_delivery,
                )
                break
            except BufferError:  # local queue full: let deliveries drain
                producer.poll(0.1)
        report.sent += 1
        producer.poll(0)
        if progress is not None and report.sent % 100 == 0:
            progress(100)
    flush(producer)
    if progress is not None:
        progress(report.sent % 100)
    return report
