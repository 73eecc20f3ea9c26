"""Whether Kafka answers this scorer: fed by librdkafka's error callback and by the loop.

librdkafka reports "all brokers down" through ``error_cb`` (wired into the scorer's
consumer and producer); the publisher reports deliveries that do not complete. Kafka
counts as back once a metadata request succeeds (the loop probes while it is away)
or a delivery completes. ``/healthz`` answers 503 with the reason meanwhile, and the
``kafka-unreachable`` / ``kafka-restored`` events mark both edges in the logs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from confluent_kafka import KafkaError as LibrdkafkaError

from streamscore.consumers.metrics import ScorerMetrics
from streamscore.logs import event

log = logging.getLogger(__name__)

#: librdkafka error codes that mean "the cluster is not reachable"
UNREACHABLE_CODES = frozenset({LibrdkafkaError._ALL_BROKERS_DOWN})


class KafkaLink:
    """Thread-safe: the loop thread reports, the metrics server asks for health."""

    def __init__(self, bootstrap: str, metrics: ScorerMetrics | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.bootstrap = bootstrap
        self.metrics = metrics
        self.clock = clock
        self._lock = threading.Lock()
        self._since: float | None = None
        self._reason = ""
        #: how many outages ended (the loop re-checks its assignment after each)
        self.restorations = 0

    @property
    def unreachable(self) -> bool:
        with self._lock:
            return self._since is not None

    def on_error(self, error: LibrdkafkaError) -> None:
        """librdkafka's ``error_cb``: all brokers down means unreachable; the rest is logged by librdkafka."""
        if error.code() in UNREACHABLE_CODES:
            self.lost(error.str())

    def lost(self, reason: str) -> None:
        with self._lock:
            if self._since is not None:
                return
            self._since, self._reason = self.clock(), reason
        if self.metrics is not None:
            self.metrics.kafka_unreachable.set(1)
        log.warning("Kafka at %s unreachable (%s); holding the batch in hand and retrying", self.bootstrap, reason,
                    extra=event("kafka-unreachable", reason=reason))

    def restored(self) -> None:
        with self._lock:
            if self._since is None:
                return
            seconds = self.clock() - self._since
            self._since = None
            self.restorations += 1
        if self.metrics is not None:
            self.metrics.kafka_unreachable.set(0)
        log.info("Kafka at %s reachable again after %.0fs", self.bootstrap, seconds,
                 extra=event("kafka-restored", seconds=round(seconds, 1)))

    def health(self) -> tuple[bool, list[str]]:
        with self._lock:
            if self._since is None:
                return True, []
            return False, [f"Kafka at {self.bootstrap} unreachable for {self.clock() - self._since:.0f}s: "
                           f"{self._reason}"]
