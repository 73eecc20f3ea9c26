"""Stream MNIST images to the images topic: key = image id, value = 784 bytes, headers per DESIGN."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Producer

from streamscore.producers.delivery import DeliveryTracker
from streamscore.producers.rate import TokenBucket
from streamscore.producers.resilient import ResilientProducer
from streamscore.shared.config import Settings
from streamscore.shared.messages import encode_image
from streamscore.shared.mnist import MnistSplit


@dataclass
class ProduceReport(DeliveryTracker):
    """What ``produce`` prints: sent == delivered + failed + not delivered, at every moment."""

    def summary(self) -> str:
        line = f"sent {self.sent:,}, delivered {self.delivered:,}, failed {self.failed:,}"
        line += f", not delivered {self.not_delivered:,}"
        return line + (f" (re-sent {self.resent:,} after a producer restart)" if self.resent else "")


@dataclass
class DrainUntil:
    """Ends the wait for deliveries: at once on ``give_up``, ``grace_s`` after ``stop``, else never."""

    stop: threading.Event | None
    give_up: threading.Event | None
    grace_s: float
    stopped_at: float | None = None

    def __call__(self) -> bool:
        if self.give_up is not None and self.give_up.is_set():
            return True
        if self.stop is None or not self.stop.is_set():
            return False
        now = time.monotonic()
        self.stopped_at = self.stopped_at or now
        return now - self.stopped_at >= self.grace_s


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
    give_up: threading.Event | None = None,
    progress: Callable[[int], None] | None = None,
    producer: Producer | None = None,
    report: ProduceReport | None = None,
    drain_after_stop_s: float = 10.0,
    **producer_overrides: Any,
) -> ProduceReport:
    """Send images and wait for their deliveries; every image ends delivered, failed or counted as not delivered.

    ``stop`` ends the sending, then waits at most ``drain_after_stop_s`` for what is in flight;
    ``give_up`` ends every wait at once. Without them the producer rides out a broker outage.
    Pass a ``report`` to read the counts even when this raises; pass a ``producer`` that has
    already delivered a message to skip the ~500 ms an idempotent producer spends obtaining its
    producer id before its first send.
    """
    report = report if report is not None else ProduceReport()
    sender = ResilientProducer(settings, settings.images_topic, tracker=report, producer=producer,
                               **producer_overrides)
    bucket = TokenBucket(rate) if rate else None
    reported = 0

    def stopped() -> bool:
        return any(event is not None and event.is_set() for event in (stop, give_up))

    try:
        for index in image_stream(split, limit, loop):
            if stopped():
                break
            if bucket is not None:
                bucket.take()
            key, value, headers = encode_image(
                split.image_id(index), split.images[index].tobytes(), int(split.labels[index])
            )
            if not sender.send(key, value, headers, stopped):
                break
            sender.service(0)
            if progress is not None and report.sent - reported >= 100:
                progress(report.sent - reported)
                reported = report.sent
        sender.drain(DrainUntil(stop, give_up, drain_after_stop_s))
    finally:
        sender.close()
    if progress is not None:
        progress(report.sent - reported)
    return report
