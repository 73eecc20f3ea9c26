"""Capped exponential backoff with jitter, for database and Kafka outages.

The scorer waits ``start`` seconds after the first failure, doubles the wait after
each further failure up to ``cap``, and spreads every wait by ±``jitter`` so that
the consumers of a group do not hammer a recovering database in lock-step.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaException, TopicPartition

from streamscore.backends.base import Backend
from streamscore.consumers.kafka_link import KafkaLink
from streamscore.consumers.metrics import ScorerMetrics, ScorerStats
from streamscore.errors import BackendError, BackendUnavailable
from streamscore.logs import event
from streamscore.shared.config import Settings

log = logging.getLogger(__name__)


@dataclass
class Backoff:
    """Delays for successive retries: start, 2·start, 4·start, … capped, each jittered."""

    start: float
    cap: float
    jitter: float = 0.2
    rng: random.Random = field(default_factory=random.Random)
    attempts: int = 0

    def __post_init__(self) -> None:
        if self.start <= 0 or self.cap <= 0:
            raise ValueError("backoff start and cap must be positive")
        if not 0 <= self.jitter < 1:
            raise ValueError("backoff jitter is a fraction in [0, 1)")

    def base(self) -> float:
        """The un-jittered delay of the next retry."""
        return min(self.cap, self.start * 2.0 ** min(self.attempts, 62))

    def next(self) -> float:
        """The delay to wait before the next retry; advances the sequence."""
        delay = self.base() * self.rng.uniform(1 - self.jitter, 1 + self.jitter)
        self.attempts += 1
        return min(delay, self.cap * (1 + self.jitter))

    def reset(self) -> None:
        self.attempts = 0


@dataclass
class Retry:
    """The retries of one action (one batch, one start-up step): its delays and its repeats.

    ``repeated`` counts the failures that happened while the database was answering (the
    reconnect before them succeeded): an error that keeps coming back from a live database
    (ORA-00600 surfaced as a recoverable error) is permanent in practice; an unreachable
    server is an outage and is waited out however long it lasts.
    """

    backoff: Backoff
    repeated: int = 0
    reachable: bool = True


class OutageHandler:
    """Rides out database and Kafka outages: pause the partitions, back off, reconnect, resume.

    While it waits it keeps calling ``consume`` (which serves the group protocol, so the
    consumer is not evicted) and rewinds anything fetched before the pause took effect.
    """

    def __init__(self, settings: Settings, backend: Backend, stop: threading.Event, stats: ScorerStats,
                 metrics: ScorerMetrics, consumer: Callable[[], Consumer | None], kafka: KafkaLink,
                 observe: Callable[[Consumer], None] = lambda consumer: None) -> None:
        self.settings = settings
        self.backend = backend
        self.stop = stop
        self.stats = stats
        self.metrics = metrics
        self.consumer = consumer
        self.kafka = kafka
        self.observe = observe

    def retry(self) -> Retry:
        return Retry(Backoff(self.settings.retry_backoff_start_s, self.settings.retry_backoff_max_s))

    def retrying(self, action: Callable[[], object], what: str) -> bool:
        """Run a database call until it succeeds; False when stopped first. Permanent errors propagate."""
        retry = self.retry()
        while not self.stop.is_set():
            try:
                action()
            except BackendUnavailable as exc:
                self.database_down(exc, what, retry)
                continue
            self.resume()
            return True
        return False

    def database_down(self, exc: BackendUnavailable, what: str, retry: Retry) -> None:
        """One failed attempt: pause, wait max(backoff, the error's retry_after), reconnect.

        Raises BackendError (not retriable) once the same action failed ``max_batch_retries``
        times while the database was answering.
        """
        if retry.reachable:
            retry.repeated += 1
        limit = self.settings.max_batch_retries
        if retry.repeated >= limit:
            raise BackendError(
                f"{what} failed {retry.repeated} times in a row while the database answers, last: {exc.message}; "
                f"treating it as permanent (raise STREAMSCORE_MAX_BATCH_RETRIES, now {limit}, if it is not)",
                reason="retries-exhausted") from exc
        delay = max(retry.backoff.next(), exc.retry_after)
        self.stats.retries += 1
        self.metrics.db_retries.inc()
        log.warning("database unavailable while %s: %s; partitions paused, retry %d in %.1fs",
                    what, exc.message, retry.backoff.attempts, delay,
                    extra=event("retry", cause="database", attempt=retry.backoff.attempts, delay_s=round(delay, 3)))
        self.pause()
        self.wait(delay)
        retry.reachable = self.reconnect()

    def kafka_down(self, what: str, retry: Retry) -> None:
        """Kafka did not take what we sent: pause, wait, try again (never drop, never give up)."""
        delay = retry.backoff.next()
        self.stats.retries += 1
        self.kafka.lost(f"{what} not acknowledged")
        log.warning("Kafka unreachable while %s; partitions paused, retry %d in %.1fs",
                    what, retry.backoff.attempts, delay,
                    extra=event("retry", cause="kafka", attempt=retry.backoff.attempts, delay_s=round(delay, 3)))
        self.pause()
        self.wait(delay)

    def reconnect(self) -> bool:
        """Open a fresh connection; True when the database answered."""
        self.backend.close()
        try:
            self.backend.connect()
        except BackendUnavailable as exc:
            log.debug("reconnect failed: %s", exc.message)
            return False
        return True

    def pause(self) -> None:
        consumer = self.consumer()
        if not self.stats.paused and consumer is not None:
            consumer.pause(consumer.assignment())
            self.stats.paused = True
            self.metrics.paused.set(1)
            log.info("partitions paused", extra=event("paused"))

    def resume(self) -> None:
        consumer = self.consumer()
        if self.stats.paused and consumer is not None:
            consumer.resume(consumer.assignment())
            self.stats.paused = False
            self.metrics.paused.set(0)
            log.info("partitions resumed", extra=event("resumed"))

    def wait(self, seconds: float) -> None:
        """Sleep while serving the group protocol (rebalances, no eviction); nothing is consumed."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self.stop.is_set():
            step = min(0.2, max(0.0, deadline - time.monotonic()))
            consumer = self.consumer()
            if consumer is None:
                self.stop.wait(step)
                continue
            for message in consumer.consume(100, step):
                if message.error():
                    continue
                # fetched before the pause took effect: rewind it for later
                tp = TopicPartition(str(message.topic()), int(message.partition() or 0), int(message.offset() or 0))
                try:
                    consumer.seek(tp)
                    consumer.pause([tp])
                except KafkaException as exc:
                    log.debug("rewinding %s: %s", tp, exc)
            self.observe(consumer)
