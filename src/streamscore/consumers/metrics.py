"""Prometheus metrics of one scorer process, and the HTTP endpoint that serves them.

``GET /metrics`` is the Prometheus text format; ``GET /healthz`` answers 200 ``ok``
or 503 with the stalled partitions (one line each), from the progress watchdog.
Every scorer has its own registry, so several scorers in one process (tests, the
demo) do not collide; ``--workers N`` gives worker i the port ``metrics_port + i``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import numpy.typing as npt
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.process_collector import ProcessCollector

log = logging.getLogger(__name__)

HealthCheck = Callable[[], tuple[bool, list[str]]]

#: model versions that keep a series of streamscore_images_scored_total (the least recently scored
#: one is removed beyond this): a label per version would otherwise grow with every hot swap
METRIC_VERSIONS = 8

BATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)


@dataclass
class ScorerStats:
    """What one scorer has done, returned by ``Scorer.run`` (the CLI prints it)."""

    consumed: int = 0
    scored: int = 0
    dead_lettered: int = 0
    batches: int = 0
    retries: int = 0
    per_version: dict[int, int] = field(default_factory=dict)
    model_version: int | None = None
    paused: bool = False
    #: the permanent error that stopped the loop, if one did
    fatal: str | None = None


class ScorerMetrics:
    """The scorer's counters, histograms and gauges (names prefixed ``streamscore_``)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        ProcessCollector(registry=self.registry)
        r = self.registry
        self.consumed = Counter("streamscore_images_consumed", "Messages read from the images topic", registry=r)
        self.scored = VersionLabels(Counter("streamscore_images_scored", "Images scored in the database and published",
                                            ["model_version"], registry=r), METRIC_VERSIONS)
        self.dead_lettered = Counter("streamscore_images_dead_lettered", "Messages sent to the dead-letter topic",
                                     ["reason"], registry=r)
        self.batches = Counter("streamscore_batches", "Batches committed", registry=r)
        self.db_retries = Counter("streamscore_db_retries", "Database calls retried after an outage", registry=r)
        self.batch_seconds = Histogram("streamscore_batch_seconds",
                                       "Wall time of one batch: database write, publish, offset commit",
                                       buckets=BATCH_BUCKETS, registry=r)
        self.end_to_end_seconds = Histogram("streamscore_end_to_end_seconds",
                                            "Produced-at header to scored-at, per image",
                                            buckets=LATENCY_BUCKETS, registry=r)
        self.model_rejections = Counter("streamscore_model_rejections",
                                        "Model artifacts rejected (each version and reason once)", ["reason"],
                                        registry=r)
        self.model_install_retries = Counter("streamscore_model_install_retries",
                                             "Model installs postponed by a database outage", registry=r)
        self.model_version = Gauge("streamscore_model_version", "Model version serving (champion)", registry=r)
        self.paused = Gauge("streamscore_paused", "1 while partitions are paused for an outage", registry=r)
        self.kafka_unreachable = Gauge("streamscore_kafka_unreachable", "1 while Kafka does not answer", registry=r)
        self.lag = Gauge("streamscore_consumer_lag",
                         "High watermark minus committed offset (approximate on the embedded broker)",
                         ["topic", "partition"], registry=r)
        self.stalled = Gauge("streamscore_partition_stalled", "1 while the watchdog finds the partition stalled",
                             ["topic", "partition"], registry=r)

    def observe_latency(self, produced_at: npt.NDArray[np.int64], scored_at: npt.NDArray[np.int64]) -> None:
        known = produced_at > 0
        for seconds in ((scored_at[known] - produced_at[known]) / 1000.0).tolist():
            self.end_to_end_seconds.observe(max(0.0, seconds))

    def forget_partition(self, topic: str, partition: int) -> None:
        for gauge in (self.lag, self.stalled):
            with contextlib.suppress(KeyError):
                gauge.remove(topic, str(partition))


class VersionLabels:
    """A metric labelled by model version that keeps the series of the ``limit`` most recently used
    versions only: ``labels(version)`` as on the metric, and the least recently used series beyond
    the limit is removed (Prometheus keeps its history; a removed counter that comes back starts
    from 0, which ``rate()`` reads as a reset)."""

    def __init__(self, metric: Counter, limit: int) -> None:
        self.metric, self.limit = metric, limit
        self._used: OrderedDict[str, None] = OrderedDict()

    def labels(self, version: str) -> Counter:
        self._used[version] = None
        self._used.move_to_end(version)
        while len(self._used) > self.limit:
            oldest, _ = self._used.popitem(last=False)
            with contextlib.suppress(KeyError):
                self.metric.remove(oldest)
        return self.metric.labels(version)

    def versions(self) -> list[str]:
        """The versions that have a series now, least recently used first."""
        return list(self._used)


class MetricsServer:
    """``/metrics`` and ``/healthz`` on a daemon thread; :meth:`close` stops it."""

    def __init__(self, metrics: ScorerMetrics, health: HealthCheck, port: int, host: str = "0.0.0.0") -> None:
        registry = metrics.registry

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path in ("/metrics", "/"):
                    self._send(200, CONTENT_TYPE_LATEST, generate_latest(registry))
                elif path == "/healthz":
                    ok, problems = health()
                    body = "ok\n" if ok else "".join(f"{p}\n" for p in problems)
                    self._send(200 if ok else 503, "text/plain; charset=utf-8", body.encode())
                else:
                    self._send(404, "text/plain; charset=utf-8", b"not found: try /metrics or /healthz\n")

            def _send(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                log.debug("metrics: " + format, *args)

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics", daemon=True)
        self._thread.start()
        log.info("metrics on http://%s:%d/metrics, health on /healthz", host, self.port)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
