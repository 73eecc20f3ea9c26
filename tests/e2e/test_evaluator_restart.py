"""`evaluate --follow` and the dashboard's reader across a restart of the embedded broker (issue 11 item 1).

The restarted broker (memory storage) has lost the evaluation topic; a consumer creates it again.
A reader that kept its client would never fetch from the new topic (its positions and leader
epochs belong to the old one) and would show the old figures for ever; it reads anew instead.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest

from streamscore.broker import EmbeddedBroker
from streamscore.consumers.evaluator import Evaluation
from streamscore.consumers.prediction_reader import read_predictions
from streamscore.shared.config import Settings, load_settings
from streamscore.shared.kafka import ensure_topics, flush, make_producer
from streamscore.shared.messages import Prediction, now_ms
from support.drill import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def own_broker() -> Iterator[EmbeddedBroker]:
    """A broker of this test only: it is stopped and started again on the same port."""
    with EmbeddedBroker() as running:
        yield running


def send_predictions(settings: Settings, ids: range) -> None:
    producer = make_producer(settings)
    for number in ids:
        prediction = Prediction(image_id=f"img-{number}", probabilities=(0.1,) * 10, label=3, model_name="mlp",
                                produced_at=now_ms(), scored_at=now_ms(), predicted=3, model_version=1,
                                role="champion", backend="duckdb")
        producer.produce(settings.predictions_topic, key=prediction.image_id.encode(), value=prediction.to_json(),
                         headers=prediction.headers())
    flush(producer)


def test_a_following_reader_reads_the_recreated_topic_after_a_broker_restart(own_broker: EmbeddedBroker) -> None:
    tag = uuid.uuid4().hex[:8]
    settings = load_settings(kafka_bootstrap=own_broker.bootstrap, predictions_topic=f"t.{tag}.predictions",
                             images_topic=f"t.{tag}.images", models_topic=f"t.{tag}.models", dlq_topic=f"t.{tag}.dlq")
    ensure_topics(settings)
    evaluation, stop = Evaluation(), threading.Event()
    reader = threading.Thread(target=read_predictions, args=(settings,), daemon=True,
                              kwargs={"follow": True, "stop": stop, "evaluation": evaluation})
    reader.start()
    try:
        send_predictions(settings, range(40))
        wait_until(lambda: len(evaluation.predictions) == 40, 30, "the first 40 predictions")
        own_broker.stop()
        own_broker.start()
        ensure_topics(settings)  # what a restarted `streamscore consume` does
        send_predictions(settings, range(40, 60))
        wait_until(lambda: len(evaluation.predictions) == 60, 60,
                   lambda: f"the predictions sent after the restart: {len(evaluation.predictions)} of 60 read")
    finally:
        stop.set()
        reader.join(30)
    assert not reader.is_alive()
