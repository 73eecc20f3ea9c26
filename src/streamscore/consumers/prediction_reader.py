"""Read the evaluation topic into an :class:`~.evaluator.Evaluation`: from the beginning, until
``expect`` distinct images, an idle timeout or a stop, riding out Kafka outages.

Completion is decided by counting (``expect``) or by an idle timeout, never by the high watermark
(the embedded broker reports it wrongly), except on a stop of ``--follow``, where the report holds
what the topic held at that moment (:func:`read_to_end`).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition
from confluent_kafka import KafkaError as LibrdkafkaError

from streamscore.consumers.evaluator import Evaluation
from streamscore.errors import KafkaError
from streamscore.shared.config import Settings
from streamscore.shared.kafka import assign_from_beginning, make_consumer, partition_count
from streamscore.shared.messages import Prediction

log = logging.getLogger(__name__)


def add_messages(evaluation: Evaluation, messages: list[Message]) -> list[Prediction]:
    """Add the records of ``messages`` (errors skipped); the new predictions among them."""
    added = []
    for message in messages:
        if message.error():
            continue
        prediction = evaluation.add_record(message.headers(), message.value() or b"")
        if prediction is not None:
            added.append(prediction)
    return added


def topic_answers(consumer: Consumer, topic: str) -> bool:
    """Whether Kafka answers with ``topic`` and its partitions (after an outage; a wiped broker may lack it)."""
    try:
        return partition_count(consumer, topic, timeout=1.0) > 0
    except KafkaException:
        return False


def read_predictions(
    settings: Settings,
    *,
    follow: bool = False,
    idle_timeout: float = 3.0,
    expect: int | None = None,
    stop: threading.Event | None = None,
    evaluation: Evaluation | None = None,
    unreachable_limit: float | None = None,
) -> Evaluation:
    """Read the topic from the beginning until ``expect`` distinct images, idle, or stop.

    Pass ``evaluation`` to watch it fill from another thread (``evaluate --follow``).
    Kafka unreachable for ``unreachable_limit`` seconds raises KafkaError (``--follow``
    keeps waiting instead, with one warning); by default ``settings.kafka_timeout_s``.
    """
    unreachable_limit = settings.kafka_timeout_s if unreachable_limit is None else unreachable_limit
    evaluation = evaluation if evaluation is not None else Evaluation()
    down_since: list[float] = []  # set by librdkafka's error callback while no broker answers

    def on_error(error: LibrdkafkaError) -> None:
        if error.code() == LibrdkafkaError._ALL_BROKERS_DOWN and not down_since:
            down_since.append(time.monotonic())

    def open_reader() -> Consumer:
        reader = make_consumer(settings, f"{settings.group}.evaluator.{uuid.uuid4().hex[:8]}", error_cb=on_error)
        try:
            reader.list_topics(settings.predictions_topic, timeout=unreachable_limit)
            assign_from_beginning(reader, settings.predictions_topic)
        except KafkaException as exc:
            reader.close()
            raise KafkaError(
                f"cannot read {settings.predictions_topic} from Kafka at {settings.kafka_bootstrap} "
                f"({exc.args[0].str() if exc.args else exc}); is Kafka up? Set STREAMSCORE_KAFKA_BOOTSTRAP "
                "or --bootstrap", reason="kafka-unreachable") from None
        except BaseException:
            reader.close()
            raise
        return reader

    consumer = open_reader()
    try:
        last = time.monotonic()
        seen_ids: set[str] = set()
        warned = False
        probed = 0.0
        while not (stop is not None and stop.is_set()):
            messages = consumer.consume(1000, 0.2)
            if messages:
                down_since.clear()
            elif down_since and time.monotonic() - probed > 1.0:
                probed = time.monotonic()
                if topic_answers(consumer, settings.predictions_topic):
                    # Kafka is back, perhaps a restarted broker that recreated the topic: a client that
                    # kept its positions and leader epochs would never fetch from it; read anew
                    # (what was read before is de-duplicated)
                    try:
                        fresh = open_reader()
                    except KafkaError:
                        continue  # gone again: keep probing
                    consumer.close()
                    consumer = fresh
                    down_since.clear()
                    log.info("Kafka at %s answers again: reading %s anew from the beginning",
                             settings.kafka_bootstrap, settings.predictions_topic)
                    warned, last = False, time.monotonic()
                    continue
            if not messages and down_since and time.monotonic() - down_since[0] > unreachable_limit:
                if not follow:
                    raise KafkaError(
                        f"Kafka at {settings.kafka_bootstrap} unreachable for {unreachable_limit:.0f}s while reading "
                        f"{settings.predictions_topic} ({len(seen_ids)} images read); try again when it is back",
                        reason="kafka-unreachable")
                if not warned:
                    log.warning("Kafka at %s unreachable; still following", settings.kafka_bootstrap)
                    warned = True
            seen_ids.update(prediction.image_id for prediction in add_messages(evaluation, messages))
            if messages:
                last = time.monotonic()
            if expect is not None and len(seen_ids) >= expect and not follow:
                break
            if not follow and expect is None and not down_since and time.monotonic() - last > idle_timeout:
                break
            if not follow and expect is not None and time.monotonic() - last > max(idle_timeout, 30):
                log.warning("stopped waiting: %d of %d images seen", len(seen_ids), expect)
                break
        if follow and not down_since:  # stopped (Ctrl-C): the report holds what the topic held at that moment
            read_to_end(consumer, settings.predictions_topic, evaluation)
    finally:
        consumer.close()
    return evaluation


def read_to_end(consumer: Consumer, topic: str, evaluation: Evaluation, limit_s: float = 5.0) -> None:
    """Add every record up to the topic's current end (high watermarks now), for at most ``limit_s``."""
    try:
        assignment = consumer.assignment()
        ends = {tp.partition: consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=1.0,
                                                             cached=False)[1] for tp in assignment}
        read = {tp.partition: max(tp.offset, 0) for tp in consumer.position(assignment)}
    except KafkaException:
        return  # Kafka away: the report holds what was read
    deadline = time.monotonic() + limit_s
    while any(read[p] < end for p, end in ends.items()) and time.monotonic() < deadline:
        messages = consumer.consume(1000, 0.2)
        for message in messages:
            if not message.error():
                read[message.partition() or 0] = (message.offset() or 0) + 1
        add_messages(evaluation, messages)
