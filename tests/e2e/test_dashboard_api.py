"""`/api/summary` and `/api/state` of the live dashboard over a real stream (broker, Scorer on DuckDB).

Served predictions only, each (image id, model version) once: duplicates, a second backend's
prediction of the same image and version, and a shadow prediction are sent to the evaluation
topic on top of the scorer's and must not count. Takes about 10 s.
"""

from __future__ import annotations

import io
import urllib.request
from collections.abc import Callable

import matplotlib.image
import numpy as np
import pytest

from streamscore.models import bundled_model
from streamscore.producers.images import produce_images
from streamscore.shared.config import Settings
from streamscore.shared.kafka import flush, make_producer
from streamscore.shared.messages import Prediction, now_ms
from streamscore.shared.mnist import MnistSplit
from support.drill import wait_until
from support.live_stream import LiveStream, live_stream

pytestmark = pytest.mark.slow

IMAGES = 400


def extra_predictions(settings: Settings) -> None:
    """A repeat, another backend's copy and a shadow: none of them may count."""
    first = dict(image_id="t10k-00000", probabilities=(0.1,) * 10, label=7, model_name="mlp",
                 produced_at=now_ms() - 5, scored_at=now_ms())
    predictions = [
        Prediction(predicted=3, model_version=2, role="champion", backend="duckdb", **first),  # repeat
        Prediction(predicted=3, model_version=2, role="champion", backend="postgres", **first),  # other backend
        Prediction(predicted=7, model_version=9, role="shadow", backend="duckdb", **first),  # never served
    ]
    producer = make_producer(settings)
    for prediction in predictions:
        producer.produce(settings.predictions_topic, key=prediction.image_id.encode(), value=prediction.to_json(),
                         headers=prediction.headers())
    flush(producer)


def send_malformed(settings: Settings) -> None:
    producer = make_producer(settings)
    producer.produce(settings.images_topic, key=b"bad-short", value=bytes(100))
    producer.produce(settings.images_topic, key=b"bad-label", value=bytes(784), headers=[("label", b"10")])
    flush(producer)


def state_of(stream: LiveStream) -> dict:  # type: ignore[type-arg]
    return stream.dashboard.state()[1]


def test_summary_counts_each_served_prediction_once(make_settings: Callable[..., Settings],
                                                    test_split: MnistSplit) -> None:
    settings = make_settings(batch_size=100)
    with live_stream(settings) as stream:
        produce_images(settings, test_split, limit=IMAGES)
        send_malformed(settings)
        wait_until(lambda: stream.scorer.stats.scored >= IMAGES and stream.scorer.stats.dead_lettered >= 2, 60,
                   "the scorer")
        extra_predictions(settings)
        wait_until(lambda: state_of(stream)["images"] >= IMAGES and state_of(stream)["dlq_total"] >= 2
                   and state_of(stream)["duplicates_ignored"] >= 2 and state_of(stream)["shadow_predictions"] >= 1,
                   60, lambda: f"the dashboard to read everything: {state_of(stream)}")
        summary = stream.get_json("/api/summary")
        state = stream.get_json("/api/state")
        shown = state["misclassified"]
        wait_until(lambda: all(m["has_pixels"] for m in state_of(stream)["misclassified"]), 30,
                   "the pixels of the misclassified digits")
        pngs = {m["image_id"]: urllib.request.urlopen(f"{stream.dashboard.url}api/digits/{m['image_id']}.png",
                                                      timeout=10).read() for m in shown}
    assert not stream.errors

    reference = bundled_model(2).forward(test_split.images[:IMAGES]).argmax(1)
    correct = int((reference == test_split.labels[:IMAGES]).sum())
    assert summary["versions"] == {"2": {"predictions": IMAGES, "correct": correct, "accuracy": correct / IMAGES}}
    assert summary["dlq"] == {"bad-label": 1, "bad-length": 1}
    assert set(summary) == {"versions", "dlq", "throughput_per_s", "latency_ms"}
    assert isinstance(summary["throughput_per_s"], float) and summary["throughput_per_s"] > 0
    latency = summary["latency_ms"]
    assert set(latency) == {"p50", "p99"} and all(isinstance(v, float) for v in latency.values())
    assert 0 < latency["p50"] <= latency["p99"]

    models = {(m["model_name"], m["model_version"]): m for m in state["models"]}
    assert models[("mlp", 2)]["role"] == "champion" and models[("mlp", 2)]["served_predictions"] == IMAGES
    assert models[("mlp", 2)]["test_accuracy"] == pytest.approx(0.9783, abs=1e-3)
    assert models[("mlp", 9)]["role"] == "shadow" and models[("mlp", 9)]["served_predictions"] == 0

    wrong = {test_split.image_id(i) for i in np.flatnonzero(reference != test_split.labels[:IMAGES])}
    assert shown and {m["image_id"] for m in shown} <= wrong
    for m in shown:
        index = int(m["image_id"].removeprefix("t10k-"))
        assert (m["label"], m["predicted"]) == (int(test_split.labels[index]), int(reference[index]))
        drawn = matplotlib.image.imread(io.BytesIO(pngs[m["image_id"]]), format="png")
        assert np.array_equal(np.rint((1 - drawn) * 255).astype(np.uint8), test_split.images[index].reshape(28, 28))
