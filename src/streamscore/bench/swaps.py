"""`streamscore bench`: many model swaps in a row at full rate (issue 12 item 5).

A scorer runs in this process while images stream in; champions v2, v3 … are published one after
the other, each as soon as the consumer serves the previous one (the records are written the
demo's way, without reading the topic back). Reported: the process's resident memory after a
warm-up and after the last swap, and the swap gap — the longest interval between two consecutive
batches at a swap divided by the median interval between batches (target ≤ 2: a swap costs about
one batch). The shadow overhead (throughput with one shadow ÷ without) is measured by the
runner with :func:`streamscore.bench.runner.run_pipeline` (``shadow=True``).
"""

from __future__ import annotations

import itertools
import os
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, Producer

from streamscore.backends import open_configured_backend
from streamscore.backends.base import ScoredBatch
from streamscore.consumers.scorer import Scorer
from streamscore.errors import BenchError
from streamscore.models import bundled_model
from streamscore.producers.lifecycle import KAFKA, Clients, TopicView, publish_with_role, write_snapshot
from streamscore.producers.models import publish_model
from streamscore.shared.config import Settings
from streamscore.shared.kafka import make_consumer, make_producer
from streamscore.shared.model_records import artifact_headers, artifact_key

#: sends images until the event is set (the runner: produce_images(loop=True); tests: the fakes)
Feed = Callable[[Settings, threading.Event], object]
#: batches scored before the first measurement and after the last swap
SETTLE_BATCHES = 20
#: longest wait for one swap to be served
SWAP_TIMEOUT_S = 60.0


def rss_bytes() -> int:
    """Resident set size of this process (Linux /proc; 0 where it is not available)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def swap_gap(stamps: list[tuple[float, int]]) -> float | None:
    """Longest interval at a swap ÷ median interval, from (time, served version) per batch in order."""
    if len(stamps) < 3:
        return None
    intervals = [b[0] - a[0] for a, b in itertools.pairwise(stamps)]
    at_swaps = [b[0] - a[0] for a, b in itertools.pairwise(stamps) if a[1] != b[1]]
    median = statistics.median(intervals)
    if not at_swaps or median <= 0:
        return None
    return max(at_swaps) / median


def swap_benchmark(settings: Settings, swaps: int, feed: Feed, *, clients: Clients = KAFKA,
                   consumer_factory: Callable[..., Consumer] = make_consumer,
                   producer_factory: Callable[..., Producer] = make_producer) -> dict[str, Any]:
    """Run ``swaps`` champion swaps in a row against a live stream (see the module doc)."""
    stamps: list[tuple[float, int]] = []

    def on_batch(result: ScoredBatch) -> None:
        if result.served:
            stamps.append((time.monotonic(), result.model.version))

    state = publish_with_role(settings, bundled_model(1), "champion", clients=clients)
    scorer = Scorer(settings, open_configured_backend(settings), on_batch=on_batch,
                    consumer_factory=consumer_factory, producer_factory=producer_factory)
    feeding = threading.Event()
    threads = [threading.Thread(target=scorer.run, name="swap-scorer", daemon=True),
               threading.Thread(target=feed, args=(settings, feeding), name="swap-feed", daemon=True)]
    for thread in threads:
        thread.start()
    try:
        _wait(lambda: len(stamps) >= SETTLE_BATCHES, "the first batches")
        before, started = rss_bytes(), time.monotonic()
        producer, view = producer_factory(settings), TopicView(state, {1})
        for version in range(2, swaps + 2):
            artifact = bundled_model(1 + version % 2).with_version(version)
            publish_model(settings, artifact, producer=producer, key=artifact_key(artifact.name, version),
                          extra_headers=artifact_headers("champion"))
            state = state.publish(version, "champion", sha256=artifact.sha256)
            view.artifacts.add(version)
            write_snapshot(settings, view, state, producer)
            _wait(_serving(stamps, version), f"v{version} to serve")
        seconds = time.monotonic() - started
        settled = len(stamps) + SETTLE_BATCHES
        _wait(lambda: len(stamps) >= settled, "the batches after the last swap")
        after = rss_bytes()
    finally:
        feeding.set()
        scorer.stop.set()
        for thread in threads:
            thread.join(30)
    return {"swaps": swaps, "seconds": round(seconds, 2), "rss_before_mb": before / 2**20,
            "rss_after_mb": after / 2**20, "rss_growth_mb": (after - before) / 2**20, "swap_gap": swap_gap(stamps)}


def _serving(stamps: list[tuple[float, int]], version: int) -> Callable[[], bool]:
    return lambda: bool(stamps) and stamps[-1][1] == version


def _wait(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + SWAP_TIMEOUT_S
    while not condition():
        if time.monotonic() > deadline:
            raise BenchError(f"swap benchmark: waited {SWAP_TIMEOUT_S:.0f}s for {what}")
        time.sleep(0.005)
