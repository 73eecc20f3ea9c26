"""The scorer's parts that need no services: backoff, start offsets, watchdog, metrics, workers."""

from __future__ import annotations

import logging
import random
import threading
import urllib.error
import urllib.request

import pytest
from confluent_kafka import OFFSET_BEGINNING

from streamscore.backends import open_backend
from streamscore.consumers.kafka_link import KafkaLink
from streamscore.consumers.metrics import MetricsServer, ScorerMetrics, ScorerStats
from streamscore.consumers.outage import Backoff, OutageHandler
from streamscore.consumers.partitions import start_offset
from streamscore.consumers.watchdog import ProgressWatchdog
from streamscore.consumers.workers import check_scale_out, worker_env
from streamscore.errors import BackendUnavailable, ConfigError
from streamscore.shared.config import Settings


def test_backoff_doubles_up_to_the_cap_with_bounded_jitter() -> None:
    backoff = Backoff(0.5, 4.0, jitter=0.2, rng=random.Random(7))
    delays = [backoff.next() for _ in range(8)]
    for delay, base in zip(delays, [0.5, 1, 2, 4, 4, 4, 4, 4], strict=True):
        assert base * 0.8 <= delay <= base * 1.2
    backoff.reset()
    assert backoff.base() == 0.5


@pytest.mark.parametrize(("retry_after", "waited"), [(7.5, 7.5), (0.0, 0.1)])
def test_a_database_retry_waits_the_longer_of_backoff_and_retry_after(
        caplog: pytest.LogCaptureFixture, retry_after: float, waited: float) -> None:
    settings = Settings(retry_backoff_start_s=0.1, retry_backoff_max_s=0.1)
    stop = threading.Event()
    stop.set()  # the wait itself returns at once; the retry event says how long it was
    with open_backend("duckdb:///:memory:") as backend:
        outages = OutageHandler(settings, backend, stop, ScorerStats(), ScorerMetrics(), lambda: None,
                                KafkaLink(settings.kafka_bootstrap))
        retry = outages.retry()
        retry.backoff.jitter = 0.0
        error = BackendUnavailable("deadlock (test)", retry_after=retry_after)
        with caplog.at_level(logging.WARNING, "streamscore.consumers.outage"):
            outages.database_down(error, "writing a batch", retry)
    (record,) = [r for r in caplog.records if getattr(r, "event", None) == "retry"]
    assert record.event_data["delay_s"] == pytest.approx(waited)


def test_backoff_jitter_spreads_consumers() -> None:
    delays = {round(Backoff(1.0, 10.0, rng=random.Random(seed)).next(), 6) for seed in range(20)}
    assert len(delays) > 10


@pytest.mark.parametrize(("stored", "committed", "start"), [
    (None, None, OFFSET_BEGINNING),
    (500, None, OFFSET_BEGINNING),   # no Kafka commit yet: the crashed first batch is re-sent
    (None, 300, 300),
    (500, 450, 450),                 # crash after the DB commit: replay the batch, the DB absorbs it
    (200, 450, 200),                 # database restored from an older backup: refill it
    (500, 0, 0),                     # group reset to 0: replay everything
    (-1, 40, 40),
])
def test_start_offset_is_the_lower_one(stored: int | None, committed: int | None, start: int) -> None:
    assert start_offset(stored, committed) == start


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_watchdog_names_a_partition_with_lag_whose_offset_does_not_move() -> None:
    clock = Clock()
    watchdog = ProgressWatchdog(10, clock=clock)
    watchdog.observe(("images", 0), 40, lag=5)
    watchdog.observe(("images", 1), 70, lag=0)
    clock.now += 9
    assert watchdog.health() == (True, [])
    clock.now += 2
    ok, problems = watchdog.health()
    assert not ok and problems == ["images[0] stalled at offset 40 with lag 5 for 11s"]
    assert [s.partition for s in watchdog.check()] == [0]
    watchdog.observe(("images", 0), 45, lag=3)  # it moved
    assert watchdog.health() == (True, [])


def test_watchdog_idle_partitions_and_revoked_ones_are_not_stalled() -> None:
    clock = Clock()
    watchdog = ProgressWatchdog(5, clock=clock)
    watchdog.observe(("images", 0), 40, lag=0)
    watchdog.observe(("images", 1), 40, lag=9)
    clock.now += 60
    watchdog.observe(("images", 0), 40, lag=0)
    assert [s.partition for s in watchdog.stalled()] == [1]
    watchdog.forget({("images", 1)})
    assert watchdog.stalled() == []


def test_metrics_and_health_endpoint() -> None:
    metrics = ScorerMetrics()
    metrics.consumed.inc(3)
    metrics.scored.labels("2").inc(2)
    metrics.lag.labels("images", "0").set(7)
    problems: list[str] = []
    server = MetricsServer(metrics, lambda: (not problems, problems), port=0, host="127.0.0.1")
    base = f"http://127.0.0.1:{server.port}"
    try:
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as answer:
            text = answer.read().decode()
        for line in ("streamscore_images_consumed_total 3.0", 'streamscore_images_scored_total{model_version="2"} 2.0',
                     'streamscore_consumer_lag{partition="0",topic="images"} 7.0'):
            assert line in text
        assert "streamscore_batch_seconds_bucket" in text and "streamscore_end_to_end_seconds_bucket" in text
        with urllib.request.urlopen(f"{base}/healthz", timeout=5) as answer:
            assert answer.status == 200
        problems.append("images[0] stalled at offset 40 with lag 5 for 11s")
        with pytest.raises(urllib.error.HTTPError) as failed:
            urllib.request.urlopen(f"{base}/healthz", timeout=5)
        assert failed.value.code == 503 and b"images[0] stalled" in failed.value.read()
        failed.value.close()
    finally:
        server.close()


def test_duckdb_refuses_several_workers_with_the_reason() -> None:
    check_scale_out("duckdb:///x.duckdb", 1)
    with pytest.raises(ConfigError, match="one writing process per database"):
        check_scale_out("duckdb:///x.duckdb", 2)
    with pytest.raises(ConfigError):
        check_scale_out("duckdb:///x.duckdb", 0)


def test_postgres_takes_several_workers() -> None:
    pytest.importorskip("psycopg")
    check_scale_out("postgresql://u@127.0.0.1:5432/db", 4)


def test_worker_env_gives_each_worker_its_metrics_port() -> None:
    settings = Settings(metrics_port=9300, group="g", batch_size=64)
    env = worker_env(settings, 2, base={})
    assert env["STREAMSCORE_METRICS_PORT"] == "9302"
    assert env["STREAMSCORE_GROUP"] == "g" and env["STREAMSCORE_BATCH_SIZE"] == "64"
    assert worker_env(Settings(), 1, base={})["STREAMSCORE_METRICS_PORT"] == "0"
