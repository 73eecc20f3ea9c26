"""Delivery bookkeeping of the image producer: nothing acknowledged is lost, nothing lost is hidden.

A fake librdkafka producer (our seam: ResilientProducer takes a producer factory) holds
messages until told to deliver, fail, purge or turn fatal, as librdkafka does across a
broker outage.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import KafkaError as RdKafkaError
from confluent_kafka import KafkaException

from streamscore.producers.delivery import DeliveryTracker
from streamscore.producers.resilient import ResilientProducer
from streamscore.shared.config import Settings, load_settings

Callback = Callable[[RdKafkaError | None, Any], None]


class FakeProducer:
    """Queues messages; ``deliver``/``fail`` settle them; ``purge`` reports them purged, like librdkafka."""

    def __init__(self, capacity: int = 1000) -> None:
        self.capacity = capacity
        self.queued: list[tuple[bytes, Callback]] = []
        self.produced: list[bytes] = []
        self.fatal = False

    def produce(self, topic: str, *, value: bytes, key: bytes, headers: Any, on_delivery: Callback) -> None:
        if self.fatal:
            raise RuntimeError("KafkaError{code=_FATAL}: producer is in a fatal state")
        if len(self.queued) >= self.capacity:
            raise BufferError("Local: Queue full")
        self.queued.append((key, on_delivery))
        self.produced.append(key)

    def poll(self, _timeout: float = 0.0) -> int:
        if self.fatal:  # librdkafka raises a fatal error from poll()
            raise KafkaException(RdKafkaError(RdKafkaError.UNKNOWN_PRODUCER_ID, "Unknown Producer Id", fatal=True))
        return 0

    def deliver(self, count: int | None = None) -> None:
        done, self.queued = self.queued[:count], self.queued[len(self.queued[:count]):]
        for _key, callback in done:
            callback(None, None)

    def fail(self, error: RdKafkaError, count: int = 1) -> None:
        done, self.queued = self.queued[:count], self.queued[count:]
        for _key, callback in done:
            callback(error, None)

    def purge(self, **_flags: Any) -> None:
        self.purged, self.queued = self.queued, []  # reported when flushed (served), like librdkafka

    def flush(self, _timeout: float = 0.0) -> int:
        for _key, callback in getattr(self, "purged", []):
            callback(RdKafkaError(RdKafkaError._PURGE_QUEUE), None)
        self.purged = []
        if self.fatal:
            raise KafkaException(RdKafkaError(RdKafkaError._FATAL, "fatal", fatal=True))
        return len(self.queued)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def settings() -> Settings:
    return load_settings(kafka_bootstrap="127.0.0.1:1")


def make(settings: Settings, *, broker_answers: bool = True) -> tuple[ResilientProducer, list[FakeProducer], Clock]:
    producers: list[FakeProducer] = []
    clock = Clock()

    def factory(_settings: Settings, **_overrides: Any) -> FakeProducer:
        producers.append(FakeProducer())
        return producers[-1]

    sender = ResilientProducer(settings, "images", tracker=DeliveryTracker(clock=clock), factory=factory,
                               prepare_topics=lambda _s: None, broker_answers=lambda _s: broker_answers)
    return sender, producers, clock


def send(sender: ResilientProducer, *keys: str) -> None:
    for key in keys:
        assert sender.send(key.encode(), b"x", [])


def test_counts_add_up_at_every_step() -> None:
    tracker = DeliveryTracker()
    seqs = [tracker.track(f"k{i}".encode(), b"x", []) for i in range(5)]
    tracker.on_delivery(seqs[0], None)
    tracker.on_delivery(seqs[1], RdKafkaError(RdKafkaError.MSG_SIZE_TOO_LARGE))  # no attempt can fix it
    tracker.on_delivery(seqs[2], RdKafkaError(RdKafkaError._MSG_TIMED_OUT))  # a new attempt can
    assert (tracker.sent, tracker.delivered, tracker.failed, tracker.not_delivered) == (5, 1, 1, 3)
    assert tracker.sent == tracker.delivered + tracker.failed + tracker.not_delivered
    assert [seq for seq, _ in tracker.to_resend()] == [seqs[2]]
    assert tracker.to_resend() == [], "marked once, re-sent once"
    assert len(tracker.errors) == 1


def test_a_callback_never_raises() -> None:
    tracker = DeliveryTracker()
    tracker.on_delivery(7, None)  # unknown sequence: ignored
    tracker.on_delivery(0, "not a KafkaError")  # type: ignore[arg-type]
    tracker.on_error("nonsense")  # type: ignore[arg-type]
    assert tracker.delivered == 0


def test_the_same_image_id_in_flight_twice_is_tracked_twice(settings: Settings) -> None:
    sender, producers, _clock = make(settings)
    send(sender, "t10k-00001", "t10k-00001")  # --loop wraps while the first copy is in flight
    producers[0].deliver(1)
    assert sender.tracker.delivered == 1 and sender.tracker.not_delivered == 1


def test_fatal_error_recreates_the_producer_and_resends_what_was_not_acknowledged(settings: Settings) -> None:
    sender, producers, _clock = make(settings)
    send(sender, "a", "b", "c", "d")
    producers[0].deliver(1)  # "a" acknowledged
    sender.tracker.on_error(RdKafkaError(RdKafkaError.UNKNOWN_PRODUCER_ID, "Unknown Producer Id", fatal=True))
    producers[0].fatal = True
    send(sender, "e")
    assert len(producers) == 2, "a fresh producer replaced the fatal one"
    assert producers[1].produced == [b"b", b"c", b"d", b"e"], "the unacknowledged ones first, in order"
    producers[1].deliver()
    report = sender.tracker
    assert (report.sent, report.delivered, report.failed, report.not_delivered, report.resent) == (5, 5, 0, 0, 3)


def test_a_stall_recreates_the_producer_only_once_the_broker_answers(settings: Settings) -> None:
    sender, producers, clock = make(settings, broker_answers=False)
    send(sender, "a", "b")
    clock.now += 60
    sender.service()
    assert len(producers) == 1, "broker away: keep waiting with the same producer"
    sender._probe = lambda _s: True
    clock.now += 60
    sender.service()
    assert len(producers) == 2
    assert producers[1].produced == [b"a", b"b"]


def test_a_full_local_queue_blocks_until_give_up_and_the_rest_is_counted(settings: Settings) -> None:
    import threading

    sender, producers, _clock = make(settings, broker_answers=False)
    producers[0].capacity = 2
    send(sender, "a", "b")
    give_up = threading.Event()
    give_up.set()
    assert not sender.send(b"c", b"x", [], give_up.is_set)
    sender.close()
    assert (sender.tracker.sent, sender.tracker.delivered, sender.tracker.not_delivered) == (3, 0, 3)


def test_a_fatal_error_raised_by_poll_recreates_and_late_reports_of_the_old_producer_are_ignored(
        settings: Settings) -> None:
    sender, producers, _clock = make(settings)
    send(sender, "a", "b")
    old_reports = list(producers[0].queued)
    producers[0].fatal = True
    sender.service()
    assert len(producers) == 2 and producers[1].produced == [b"a", b"b"]
    for _key, callback in old_reports:  # the replaced producer reports late: its errors are ignored
        callback(RdKafkaError(RdKafkaError._MSG_TIMED_OUT), None)
    sender.service()
    assert producers[1].produced == [b"a", b"b"], "not sent a third time"
    producers[1].deliver()
    assert (sender.tracker.delivered, sender.tracker.not_delivered, sender.tracker.resent) == (2, 0, 2)
