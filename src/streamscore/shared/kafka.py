"""Kafka client factories and topic creation (confluent-kafka / librdkafka)."""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from streamscore.errors import KafkaError
from streamscore.logs import RepeatFilter
from streamscore.shared.config import Settings

log = logging.getLogger(__name__)
librdkafka_log = logging.getLogger("streamscore.librdkafka")
# while a broker is away librdkafka repeats its connection errors every few hundred ms
librdkafka_log.addFilter(RepeatFilter(window_s=30.0))


def client_config(settings: Settings, tuning: dict[str, Any] | None = None, required: dict[str, Any] | None = None,
                  overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Our tuning < STREAMSCORE_KAFKA_CONFIG < what correctness needs < the caller's overrides."""
    defaults = {
        "bootstrap.servers": settings.kafka_bootstrap,
        # idle connections closed by the broker are normal, not worth a log line
        "log.connection.close": False,
        # librdkafka's own log lines go through Python logging (same format, --log-json works)
        "logger": librdkafka_log,
    }
    return defaults | (tuning or {}) | settings.extra_kafka_config() | (required or {}) | (overrides or {})


def make_producer(settings: Settings, **overrides: Any) -> Producer:
    tuning = {
        # small batches, sent soon: latency matters more than the last bit of throughput
        "linger.ms": 5,
        "compression.type": "none",
        # messages beyond ~1 MB are refused by the embedded broker anyway
        "message.max.bytes": 1_000_000,
        # a bounded local queue: while the broker is away produce() raises BufferError (the caller
        # waits and reports) instead of memory growing for minutes (librdkafka's default is 1 GB)
        "queue.buffering.max.messages": 20_000,
        "queue.buffering.max.kbytes": 32_768,
    }
    # exactly one copy per send even when librdkafka retries (acks=all, ordered)
    required = {"enable.idempotence": True}
    return Producer(client_config(settings, tuning, required, overrides))


def make_consumer(settings: Settings, group: str, **overrides: Any) -> Consumer:
    tuning = {
        "auto.offset.reset": "earliest",
        # the embedded broker's group join waits about half the session timeout
        "session.timeout.ms": settings.session_timeout_ms,
        "heartbeat.interval.ms": max(500, settings.session_timeout_ms // 6),
        "max.poll.interval.ms": settings.max_poll_interval_ms,
        "partition.assignment.strategy": "cooperative-sticky",
        # the embedded broker holds a fetch for the whole wait when little is queued
        "fetch.wait.max.ms": 20,
    }
    required = {
        "group.id": group,
        # offsets are committed by hand, after the database commit
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
    }
    return Consumer(client_config(settings, tuning, required, overrides))


def assign_from_beginning(consumer: Consumer, topic: str, timeout: float = 10.0) -> int:
    """Assign every partition of ``topic`` from offset 0 (readers that see the whole topic).

    Returns how many partitions the topic has; 0 when it does not exist (partition 0 is
    assigned then, so a topic created later is still read). Raises KafkaError (one line)
    when Kafka does not answer within ``timeout``.
    """
    try:
        metadata = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
    except KafkaException as exc:
        raise KafkaError(f"cannot read the partitions of {topic}: {describe_kafka_error(exc)}; is Kafka up? "
                         "(start one with `streamscore broker` or set STREAMSCORE_KAFKA_BOOTSTRAP)") from None
    partitions = list(metadata.partitions) if metadata is not None and metadata.partitions else []
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions or [0]])
    return len(partitions)


def partition_count(consumer: Consumer, topic: str, timeout: float) -> int:
    """How many partitions ``topic`` has: 0 when it does not exist or reports an error (deleted, or a
    restarted broker without its data); KafkaException when Kafka does not answer within ``timeout``."""
    metadata = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
    return len(metadata.partitions) if metadata is not None and metadata.error is None else 0


def describe_kafka_error(exc: BaseException) -> str:
    """The one-line text of a librdkafka error (``KafkaException(KafkaError)`` → its ``str()``)."""
    first = exc.args[0] if exc.args else exc
    text = first.str() if hasattr(first, "str") else str(first)
    return str(text).splitlines()[0] if str(text) else type(exc).__name__


def quiet_admin(settings: Settings) -> AdminClient:
    """An admin client whose connection failures are reported by our one-line errors, not librdkafka's log."""
    # log_level 2 (critical): "Connection refused" lines would repeat every retry while we wait
    return AdminClient(client_config(settings, overrides={"log_level": 2}))


def existing_topics(settings: Settings, timeout: float | None = None, admin: AdminClient | None = None) -> set[str]:
    """The topic names of the cluster; KafkaError when Kafka does not answer within ``timeout`` seconds
    (default: ``settings.kafka_timeout_s``)."""
    timeout = settings.kafka_timeout_s if timeout is None else timeout
    admin = admin or quiet_admin(settings)
    deadline = time.monotonic() + timeout
    while True:
        try:
            return set(admin.list_topics(timeout=min(5.0, max(0.5, deadline - time.monotonic()))).topics)
        except KafkaException as exc:
            if time.monotonic() >= deadline:
                raise KafkaError(
                    f"cannot reach Kafka at {settings.kafka_bootstrap} within {timeout:.0f}s "
                    f"({describe_kafka_error(exc)}); start one (`streamscore broker`) or set "
                    "STREAMSCORE_KAFKA_BOOTSTRAP", reason="kafka-unreachable"
                ) from None
            time.sleep(0.5)


def topic_specs(settings: Settings) -> list[NewTopic]:
    return [
        NewTopic(settings.images_topic, settings.partitions, 1),
        NewTopic(settings.predictions_topic, settings.partitions, 1),
        NewTopic(settings.dlq_topic, 1, 1),
        # compacted: the newest artifact per model name is what matters
        NewTopic(settings.models_topic, 1, 1, config={"cleanup.policy": "compact"}),
    ]


def ensure_topics(settings: Settings, timeout: float | None = None) -> list[str]:
    """Create the four topics if missing; return the names that were created.

    Raises KafkaError (one line) when Kafka does not answer within ``timeout`` seconds
    (default: ``settings.kafka_timeout_s``).
    """
    timeout = settings.kafka_timeout_s if timeout is None else timeout
    admin = quiet_admin(settings)
    existing = existing_topics(settings, timeout, admin)
    wanted = [spec for spec in topic_specs(settings) if spec.topic not in existing]
    if not wanted:
        return []
    created = []
    for name, future in admin.create_topics(wanted, operation_timeout=timeout, request_timeout=timeout).items():
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise KafkaError(f"cannot create topic {name}: {describe_kafka_error(exc)}") from None
    return created


def flush(producer: Producer, timeout: float = 30.0) -> None:
    """Flush or raise: undelivered messages must never be forgotten silently."""
    remaining = producer.flush(timeout)
    if remaining:
        raise KafkaError(f"{remaining} message(s) not delivered within {timeout:.0f}s; is Kafka up?")
