"""`evaluate` with Kafka unreachable: one StreamscoreError after a bounded wait, no traceback."""

from __future__ import annotations

import pytest

from streamscore.broker.embedded import free_port
from streamscore.consumers.prediction_reader import read_predictions
from streamscore.errors import KafkaError
from streamscore.shared.config import Settings


def test_evaluate_stops_with_one_clear_error_when_kafka_is_unreachable() -> None:
    settings = Settings(kafka_bootstrap=f"127.0.0.1:{free_port()}", predictions_topic="nowhere")
    with pytest.raises(KafkaError) as failed:
        read_predictions(settings, unreachable_limit=1.0)
    assert failed.value.reason == "kafka-unreachable"
    assert f"Kafka at {settings.kafka_bootstrap}" in failed.value.message and "is Kafka up?" in failed.value.message
    assert "\n" not in failed.value.message
