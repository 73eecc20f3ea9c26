"""The swap measurement of `streamscore bench` (streamscore.bench.swaps): its figures from batch
stamps, and the whole run at a tiny size on fake Kafka with DuckDB (a functional check, not a
measurement: the bench itself is run by hand)."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

from streamscore.bench.swaps import rss_bytes, swap_benchmark, swap_gap
from streamscore.shared.config import Settings
from support.fake_kafka import FakeCluster
from support.lifecycle import fake_clients, send_mnist
from support.loop_harness import loop_settings


def test_the_swap_gap_is_the_longest_interval_at_a_swap_over_the_median() -> None:
    stamps = [(0.0, 1), (1.0, 1), (2.0, 1), (5.0, 2), (6.0, 2), (7.0, 3), (8.0, 3)]
    assert swap_gap(stamps) == 3.0  # 2.0 → 5.0 at the swap to v2; median interval 1.0
    assert swap_gap([(0.0, 1), (1.0, 1), (2.0, 1)]) is None  # no swap
    assert rss_bytes() > 0


def test_a_small_swap_run_on_fake_kafka(tmp_path: Path) -> None:
    cluster = FakeCluster()
    settings = loop_settings(tmp_path, batch_size=8)
    for topic in ("models", "images", "predictions", "dlq"):
        cluster.create_topic(topic, 2 if topic == "images" else 1)
    rows = itertools.count()

    def feed(_: Settings, stop: threading.Event) -> None:
        while not stop.wait(0.005):
            start = next(rows) * 8 % 9_000
            send_mnist(cluster, range(start, start + 8))

    result = swap_benchmark(settings, 3, feed, clients=fake_clients(cluster),
                            consumer_factory=cluster.make_consumer, producer_factory=cluster.make_producer)
    assert result["swaps"] == 3 and result["swap_gap"] is not None and result["rss_after_mb"] > 0
