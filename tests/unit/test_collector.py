"""Batches by availability: take what is queued and go; under load batches grow by themselves."""

from __future__ import annotations

import threading

from confluent_kafka import TopicPartition

from streamscore.consumers.collector import collect
from support.fake_kafka import FakeCluster, FakeConsumer


def consumer_with(queued: int) -> FakeConsumer:
    cluster = FakeCluster()
    cluster.create_topic("images", 1)
    cluster.send_images("images", [f"t10k-{i:05d}" for i in range(queued)])
    consumer = cluster.make_consumer(None, "g")  # type: ignore[arg-type]
    consumer.assign([TopicPartition("images", 0, 0)])
    return consumer


def test_a_free_loop_takes_what_is_queued_without_waiting_out_the_linger() -> None:
    # a linger of an hour: the batch must close because nothing more is queued, not by the clock
    batch = collect(consumer_with(3), batch_size=500, linger_ms=3_600_000, stop=threading.Event())
    assert [m.offset() for m in batch] == [0, 1, 2]


def test_under_load_a_batch_fills_up_to_the_batch_size() -> None:
    consumer = consumer_with(40)
    stop = threading.Event()
    sizes = [len(collect(consumer, batch_size=16, linger_ms=3_600_000, stop=stop)) for _ in range(4)]
    assert sizes == [16, 16, 8, 0]


def test_a_zero_linger_still_takes_what_is_queued() -> None:
    assert len(collect(consumer_with(5), batch_size=16, linger_ms=0, stop=threading.Event())) == 5
