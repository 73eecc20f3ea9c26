"""Collect one batch of images from the consumer (step 0 of the loop, before .checkpoint).

The batch closes when it is full, when ``linger_ms`` has passed since its first message,
or when nothing more has arrived for ``IDLE_GAP_S``: under load batches fill up, and at
low rates an image does not wait for company that is not coming (docs/decisions.md).
"""

from __future__ import annotations

import logging
import threading
import time

from confluent_kafka import Consumer, Message

log = logging.getLogger(__name__)

#: a batch closes early when no message arrived for this long (nothing is queued)
IDLE_GAP_S = 0.005


def collect(consumer: Consumer, batch_size: int, linger_ms: int, stop: threading.Event) -> list[Message]:
    """Up to ``batch_size`` messages; an empty list when nothing arrived within a short poll."""
    pending: list[Message] = []
    deadline: float | None = None
    while len(pending) < batch_size and not stop.is_set():
        if deadline is None:
            # wait for the first message only: consume() would hold it until the batch fills
            first = consumer.poll(0.25)
            arrived = [first] if first is not None else []
        else:
            left = deadline - time.monotonic()
            arrived = consumer.consume(batch_size - len(pending), max(0.0, min(left, IDLE_GAP_S)))
            if not arrived:
                break
        for message in arrived:
            if message.error():
                log.warning("images topic: %s", message.error())
                continue
            pending.append(message)
        if not pending:
            return []  # nothing yet: give the loop a chance to switch models or stop
        if deadline is None:
            deadline = time.monotonic() + linger_ms / 1000
        elif time.monotonic() >= deadline:
            break
    return pending
