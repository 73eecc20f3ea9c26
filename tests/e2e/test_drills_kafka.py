"""Kafka outage drills: the broker keeps its state while a TCP proxy cuts every client off.

The broker advertises the proxy's port (tests/support/proxied_broker.py), so the consumer,
its producer, the drill's producer and the topic watchers all lose Kafka at once, as in a
real outage or network partition. Every drill ends with the invariant of
tests/support/drill.py: no image lost, none stored twice, every prediction delivered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from streamscore.broker.embedded import free_port
from streamscore.shared.config import Settings
from streamscore.shared.kafka import ensure_topics
from streamscore.shared.mnist import MnistSplit
from support.databases import duckdb_rows
from support.drill import Drill, drill, drill_settings, healthz, wait_until
from support.proxied_broker import ProxiedBroker

pytestmark = pytest.mark.slow


@pytest.fixture
def kd(make_settings: Callable[..., Settings], tmp_path: Path, test_split: MnistSplit,
       proxied_broker: ProxiedBroker) -> Iterator[Drill]:
    settings = drill_settings(make_settings, kafka_bootstrap=proxied_broker.bootstrap)
    with drill(settings, settings.backend_url, tmp_path, test_split) as running:
        yield running
    proxied_broker.restore()


def finish(d: Drill) -> None:
    d.wait_predicted(timeout=90)
    d.wait_dead_letters()
    for consumer in d.consumers:
        assert consumer.stop() == 0, consumer.tail()
    d.check_invariant(*duckdb_rows(d.backend_url))


def test_busy_consumer_holds_its_batch_through_a_kafka_outage(kd: Drill, proxied_broker: ProxiedBroker) -> None:
    port = free_port()
    release = kd.workdir / "release-the-batch"
    kd.send_malformed()
    kd.produce(0, 4000)
    # the first batch is held after its database commit (a test-only fault point) until Kafka is cut:
    # the consumer has a batch in hand whose predictions are not sent yet, whatever the machine's speed
    consumer = kd.start_consumer("--metrics-port", str(port), "--batch-size", "20",
                                 STREAMSCORE_FAULT_POINT="after-db-commit", STREAMSCORE_FAULT_HOLD_UNTIL=str(release))
    consumer.wait_event("fault-hold")
    producer = kd.produce_in_background(4000, 5000, rate=200)  # more images keep arriving across the cut
    proxied_broker.cut()
    release.touch()
    consumer.wait_event("kafka-unreachable", 30)
    wait_until(lambda: healthz(port)[0] == 503 and "Kafka at" in healthz(port)[1], 15,
               lambda: f"/healthz to report Kafka unreachable: {healthz(port)}")
    # the batch in hand is committed in the database; its predictions wait: paused, retrying, alive
    consumer.wait_event("retry", 40, count=2, cause="kafka")
    assert consumer.process.poll() is None, consumer.tail()
    proxied_broker.restore()
    consumer.wait_event("kafka-restored", 30)
    producer.join(90)
    wait_until(lambda: healthz(port)[0] == 200, 30, lambda: f"/healthz to recover: {healthz(port)}")
    finish(kd)


def test_idle_consumer_gets_its_partitions_back_after_a_kafka_outage(
        kd: Drill, proxied_broker: ProxiedBroker) -> None:
    consumer = kd.start_consumer()
    consumer.wait_event("assigned")
    kd.produce(0, 100)
    kd.wait_predicted()
    proxied_broker.cut()
    consumer.wait_event("kafka-unreachable", 30)
    consumer.wait_event("revoked", 30)  # its session timed out: the group has forgotten it (partitions lost)
    proxied_broker.restore()
    consumer.wait_event("kafka-restored", 30)
    kd.send_malformed()
    kd.produce(100, 300)
    finish(kd)
    assert consumer.events("assigned"), consumer.tail()


def test_idle_consumer_scores_again_after_a_broker_restart_wiped_the_topics(
        kd: Drill, proxied_broker: ProxiedBroker) -> None:
    """The embedded broker keeps nothing across a restart: the consumer re-subscribes once the topics are back."""
    consumer = kd.start_consumer()
    consumer.wait_event("assigned")
    kd.produce(0, 100)
    kd.wait_predicted()
    before = set(kd.produced_ids)
    proxied_broker.restart()
    ensure_topics(kd.settings)  # what `streamscore produce` does at start
    kd.rewatch()  # the drill's own readers of the wiped topics start again too
    kd.produced_ids = set()
    kd.produce(100, 300)
    kd.wait_predicted(timeout=90)
    # the model it serves is gone from the wiped models topic: the consumer says so (and keeps serving it)
    consumer.wait_event("models-topic-empty", timeout=30, version=1)
    assert consumer.stop() == 0, consumer.tail()
    rows, images = duckdb_rows(kd.backend_url)
    assert sorted(rows) == sorted((i, 1) for i in before | kd.produced_ids), "each image stored once"
    assert images == before | kd.produced_ids
