"""Collect one batch of images from the consumer (before .checkpoint): batches by availability.

The loop waits only for the first message. Then it takes whatever librdkafka already holds
(up to ``batch_size``) without waiting and goes: at low rates an image is scored at once,
not after waiting for company that is not coming; under load messages pile up in the local
queue while a batch is in the database, so the next batch is bigger by itself.
``linger_ms`` is only an upper bound on how long a batch keeps taking messages that are
still arriving; what is queued when the first message comes is always taken (docs/decisions.md).
"""

from __future__ import annotations

import logging
import threading
import time

from confluent_kafka import Consumer, Message

log = logging.getLogger(__name__)

#: how long one poll waits for a first message before the loop gets a turn (model switch, stop)
FIRST_MESSAGE_WAIT_S = 0.25


def collect(consumer: Consumer, batch_size: int, linger_ms: int, stop: threading.Event) -> list[Message]:
    """Up to ``batch_size`` messages; an empty list when nothing arrived within a short poll."""
    first = consumer.poll(FIRST_MESSAGE_WAIT_S)
    pending = _good([first] if first is not None else [])
    if not pending:
        return []
    deadline = time.monotonic() + linger_ms / 1000
    while len(pending) < batch_size and not stop.is_set():
        arrived = consumer.consume(batch_size - len(pending), 0)  # what is queued already, no wait
        if not arrived:
            break
        pending += _good(arrived)
        if time.monotonic() >= deadline:
            break
    return pending


def _good(messages: list[Message]) -> list[Message]:
    """The messages without a consumer error (errors are logged: partition EOF is not enabled)."""
    good = []
    for message in messages:
        if message.error():
            log.warning("images topic: %s", message.error())
            continue
        good.append(message)
    return good
