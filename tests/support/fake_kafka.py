"""Small in-process fakes of the confluent-kafka Consumer and Producer: our seam, not Kafka.

The scorer takes its Kafka clients from factories (``Scorer(consumer_factory=…,
producer_factory=…)``); :class:`FakeCluster` hands out fakes that share one in-memory
log per topic partition, so unit tests drive the scoring loop without a broker: one
consumer per group gets every partition, and the test can cut Kafka (:meth:`FakeCluster.down`),
revoke partitions or make deliveries fail. Only what the scorer uses is implemented.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, TIMESTAMP_CREATE_TIME, KafkaError, KafkaException, TopicPartition

from streamscore.model.artifact import ModelArtifact
from streamscore.shared.config import Settings
from streamscore.shared.messages import encode_image, model_headers

Headers = list[tuple[str, bytes]]


@dataclass
class FakeMessage:
    _topic: str
    _partition: int
    _offset: int
    _key: bytes | None
    _value: bytes | None
    _headers: Headers
    #: CreateTime, epoch ms
    _timestamp: int = field(default_factory=lambda: time.time_ns() // 1_000_000)

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> Headers:
        return list(self._headers)

    def error(self) -> None:
        return None

    def timestamp(self) -> tuple[int, int]:
        return TIMESTAMP_CREATE_TIME, self._timestamp


def unreachable() -> KafkaError:
    return KafkaError(KafkaError._ALL_BROKERS_DOWN)


@dataclass
class FakeCluster:
    """Topics, committed offsets and whether Kafka answers; thread-safe."""

    topics: dict[str, list[list[FakeMessage]]] = field(default_factory=dict)
    committed: dict[tuple[str, str, int], int] = field(default_factory=dict)
    consumers: list[FakeConsumer] = field(default_factory=list)
    producers: list[FakeProducer] = field(default_factory=list)
    #: deliveries that fail once each (the publisher must send those records again)
    failing_deliveries: int = 0
    #: producers made while this is set never deliver, though Kafka answers (lost idempotence state)
    stuck_producers: bool = False
    reachable: bool = True
    changed: threading.Condition = field(default_factory=threading.Condition)

    # -- factories (signatures of shared.kafka.make_consumer / make_producer) ----------------
    def make_consumer(self, settings: Settings, group: str, **overrides: Any) -> FakeConsumer:
        consumer = FakeConsumer(self, group, overrides.get("error_cb"))
        self.consumers.append(consumer)
        return consumer

    def make_producer(self, settings: Settings, **overrides: Any) -> FakeProducer:
        producer = FakeProducer(self, overrides.get("error_cb"), stuck=self.stuck_producers)
        self.producers.append(producer)
        return producer

    # -- the test's controls -----------------------------------------------------------------
    def create_topic(self, name: str, partitions: int) -> None:
        with self.changed:
            self.topics.setdefault(name, [[] for _ in range(partitions)])

    def append(self, topic: str, partition: int, key: bytes | None, value: bytes | None,
               headers: Headers) -> FakeMessage:
        with self.changed:
            log = self.topics.setdefault(topic, [[]])[partition]
            message = FakeMessage(topic, partition, len(log), key, value, list(headers))
            log.append(message)
            self.changed.notify_all()
            return message

    def send_images(self, topic: str, ids: list[str], pixels: bytes = bytes(784), label: int | None = 3) -> None:
        """Images spread over the partitions by a stable hash of the id (as Kafka's partitioner does)."""
        partitions = len(self.topics[topic])
        for image_id in ids:
            key, value, headers = encode_image(image_id, pixels, label)
            self.append(topic, int(hashlib.md5(key).hexdigest(), 16) % partitions, key, value,
                        [(n, bytes(v)) for n, v in headers])

    def publish_model(self, topic: str, artifact: ModelArtifact) -> None:
        value = artifact.to_bytes()
        headers = model_headers(artifact.version, hashlib.sha256(value).hexdigest())
        self.append(topic, 0, artifact.name.encode(), value, [(n, bytes(v)) for n, v in headers])

    def messages(self, topic: str) -> list[FakeMessage]:
        with self.changed:
            return [m for log in self.topics.get(topic, []) for m in log]

    def down(self) -> None:
        with self.changed:
            self.reachable = False

    def up(self) -> None:
        with self.changed:
            self.reachable = True
            self.changed.notify_all()

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        with self.changed:
            return self.changed.wait_for(predicate, timeout)


class FakeConsumer:
    """One member of a group that owns every partition of the topics it subscribes to."""

    def __init__(self, cluster: FakeCluster, group: str, error_cb: Callable[[KafkaError], None] | None) -> None:
        self.cluster = cluster
        self.group = group
        self.error_cb = error_cb
        self.positions: dict[tuple[str, int], int] = {}
        self.paused: set[tuple[str, int]] = set()
        self.subscription: list[str] = []
        self.callbacks: dict[str, Callable[..., None]] = {}
        self._rebalance = False
        #: partitions to take away at the next poll (a rebalance the test plays)
        self.revoke_next: list[tuple[str, int]] = []
        self.closed = False
        self.subscriptions = 0

    # -- group -------------------------------------------------------------------------------
    def subscribe(self, topics: list[str], on_assign: Callable[..., None], on_revoke: Callable[..., None],
                  on_lost: Callable[..., None] | None = None) -> None:
        self.subscription = list(topics)
        self.callbacks = {"assign": on_assign, "revoke": on_revoke}
        self._rebalance = True
        self.subscriptions += 1

    def unsubscribe(self) -> None:
        owned = [TopicPartition(t, p) for t, p in self.positions]
        if owned and self.callbacks:
            self.callbacks["revoke"](self, owned)
        self.positions.clear()
        self.subscription = []

    def _serve_group(self) -> None:
        if not self.cluster.reachable:
            if self.error_cb is not None:
                self.error_cb(unreachable())
            return
        if self.revoke_next:
            gone = [TopicPartition(t, p) for t, p in self.revoke_next]
            self.revoke_next = []
            self.callbacks["revoke"](self, gone)
            for tp in gone:
                self.positions.pop((tp.topic, tp.partition), None)
        if self._rebalance:
            self._rebalance = False
            wanted = [TopicPartition(t, p) for t in self.subscription
                      for p in range(len(self.cluster.topics.get(t, [])))]
            self.callbacks["assign"](self, wanted)

    def incremental_assign(self, partitions: list[TopicPartition]) -> None:
        self.assign(partitions)

    def assign(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            key = (tp.topic, tp.partition)
            if tp.offset >= 0:
                self.positions[key] = tp.offset
            elif tp.offset == OFFSET_BEGINNING:
                self.positions[key] = 0
            else:
                self.positions[key] = self.cluster.committed.get((self.group, *key), 0)

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(t, p) for t, p in self.positions]

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition, self.positions.get((tp.topic, tp.partition), -1001))
                for tp in partitions]

    def committed(self, partitions: list[TopicPartition], timeout: float = 0) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition, self.cluster.committed.get((self.group, tp.topic, tp.partition),
                                                                                    -1001)) for tp in partitions]

    def commit(self, offsets: list[TopicPartition], asynchronous: bool = True) -> None:
        if not self.cluster.reachable:
            raise KafkaException(unreachable())
        for tp in offsets:
            self.cluster.committed[(self.group, tp.topic, tp.partition)] = tp.offset

    # -- fetching ----------------------------------------------------------------------------
    def pause(self, partitions: list[TopicPartition]) -> None:
        self.paused |= {(tp.topic, tp.partition) for tp in partitions}

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.paused -= {(tp.topic, tp.partition) for tp in partitions}

    def seek(self, partition: TopicPartition) -> None:
        self.positions[(partition.topic, partition.partition)] = partition.offset

    def _take(self, limit: int) -> list[FakeMessage]:
        taken: list[FakeMessage] = []
        if not self.cluster.reachable:
            return taken
        for key in sorted(self.positions):
            if key in self.paused:
                continue
            log = self.cluster.topics.get(key[0], [])
            messages = log[key[1]][self.positions[key]:self.positions[key] + limit - len(taken)] \
                if key[1] < len(log) else []
            self.positions[key] += len(messages)
            taken += messages
        return taken

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[FakeMessage]:
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            self._serve_group()
            with self.cluster.changed:
                taken = self._take(num_messages)
                left = deadline - time.monotonic()
                if taken or left <= 0:
                    return taken
                self.cluster.changed.wait(min(left, 0.05))

    def poll(self, timeout: float = -1) -> FakeMessage | None:
        taken = self.consume(1, timeout)
        return taken[0] if taken else None

    # -- metadata ----------------------------------------------------------------------------
    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        if not self.cluster.reachable:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT, "Failed to get metadata"))
        names = [topic] if topic else list(self.cluster.topics)
        return SimpleNamespace(topics={
            name: SimpleNamespace(partitions={p: None for p in range(len(self.cluster.topics[name]))}, error=None)
            for name in names if name in self.cluster.topics})

    def get_watermark_offsets(self, partition: TopicPartition, timeout: float = 0,
                              cached: bool = False) -> tuple[int, int]:
        log = self.cluster.topics.get(partition.topic, [])
        return 0, len(log[partition.partition]) if partition.partition < len(log) else 0

    def close(self) -> None:
        self.closed = True


class FakeProducer:
    """Queues records; :meth:`flush` delivers them while the cluster is reachable."""

    def __init__(self, cluster: FakeCluster, error_cb: Callable[[KafkaError], None] | None,
                 stuck: bool = False) -> None:
        self.cluster = cluster
        self.error_cb = error_cb
        self.stuck = stuck
        self.queue: list[tuple[str, bytes | None, bytes | None, Headers, Callable[..., None] | None]] = []

    def produce(self, topic: str, key: bytes | None = None, value: bytes | None = None,
                headers: list[tuple[str, Any]] | None = None,
                on_delivery: Callable[..., None] | None = None) -> None:
        encoded = [(n, v.encode() if isinstance(v, str) else (v or b"")) for n, v in headers or []]
        self.queue.append((topic, key, value, encoded, on_delivery))

    def poll(self, timeout: float = 0) -> int:
        return self.flush(timeout)

    def purge(self) -> None:
        queue, self.queue = self.queue, []
        for *_, on_delivery in queue:
            if on_delivery is not None:
                on_delivery(KafkaError(KafkaError._PURGE_QUEUE), None)

    def flush(self, timeout: float = -1) -> int:
        if not self.cluster.reachable or self.stuck:
            if self.error_cb is not None and not self.cluster.reachable:
                self.error_cb(unreachable())
            with self.cluster.changed:
                self.cluster.changed.wait(min(max(timeout, 0.0), 0.05))
            return len(self.queue)
        queue, self.queue = self.queue, []
        for topic, key, value, headers, on_delivery in queue:
            if self.cluster.failing_deliveries:
                self.cluster.failing_deliveries -= 1
                if on_delivery is not None:
                    on_delivery(KafkaError(KafkaError._MSG_TIMED_OUT), None)
                continue
            if topic not in self.cluster.topics:
                self.cluster.create_topic(topic, 1)
            message = self.cluster.append(topic, 0, key, value, headers)
            if on_delivery is not None:
                on_delivery(None, message)
        return 0

    def __len__(self) -> int:
        return len(self.queue)
