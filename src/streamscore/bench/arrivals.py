"""Latency as a user sees it: from an image's produced-at to its prediction's arrival on the evaluation topic.

A reader thread follows the predictions topic while the paced pipeline runs and stamps every
prediction with the wall-clock time it arrived; ``produced-at`` is the producer's wall clock,
so both ends are the same machine's clock. The reader asks the broker for short fetch waits,
so its own wait adds at most a few milliseconds.
"""

from __future__ import annotations

import threading
import time
import uuid
from types import TracebackType

import numpy as np

from streamscore.shared.config import Settings
from streamscore.shared.evaluation_events import record_kind
from streamscore.shared.kafka import assign_from_beginning, make_consumer
from streamscore.shared.messages import Prediction

#: the first second of a fresh stream measures client start-up (producer id, group join), not the pipeline
WARMUP_MS = 1000


class PredictionArrivals:
    """Collects (produced_at, arrived_at) per image id while running (``with`` block)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.arrivals: dict[str, tuple[int, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="prediction-arrivals", daemon=True)

    def __enter__(self) -> PredictionArrivals:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(10)

    def wait_for(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.arrivals) < count and time.monotonic() < deadline:
            time.sleep(0.05)

    def _read(self) -> None:
        consumer = make_consumer(self.settings, f"bench-arrivals-{uuid.uuid4().hex[:8]}", **{"fetch.wait.max.ms": 5})
        try:
            assign_from_beginning(consumer, self.settings.predictions_topic)
            while not self._stop.is_set():
                # wait for one message only, then take what is queued: consume(n, timeout) would hold
                # every arrival until n messages or the timeout, adding up to that timeout to each
                first = consumer.poll(0.05)
                if first is None:
                    continue
                for message in [first, *consumer.consume(1000, 0)]:
                    value = message.value()
                    if message.error() or value is None or record_kind(message.headers(), value) is not None:
                        continue  # not a prediction (a model-rejected event)
                    arrived = int(time.time() * 1000)
                    prediction = Prediction.from_json(value)
                    self.arrivals.setdefault(prediction.image_id, (prediction.produced_at, arrived))
        finally:
            consumer.close()

    def percentiles(self) -> dict[str, float]:
        """p50/p95/p99 of arrival minus produced-at over the images produced after the warm-up."""
        rows = [(produced, arrived - produced) for produced, arrived in self.arrivals.values() if produced > 0]
        if not rows:
            return {}
        start = min(produced for produced, _ in rows) + WARMUP_MS
        steady = [latency for produced, latency in rows if produced >= start] or [latency for _, latency in rows]
        p50, p95, p99 = np.percentile(steady, [50, 95, 99])
        return {"p50_ms": float(p50), "p95_ms": float(p95), "p99_ms": float(p99), "measured_images": float(len(steady))}
