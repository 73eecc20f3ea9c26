"""The evaluation breaks results down by backend: two backends scoring the same images are two rows."""

from __future__ import annotations

from confluent_kafka import TopicPartition

from streamscore.consumers.evaluator import Evaluation
from streamscore.consumers.prediction_reader import read_to_end
from streamscore.shared.config import Settings
from streamscore.shared.messages import Prediction
from support.fake_kafka import FakeCluster


def prediction(image: int, backend: str, version: int = 1, predicted: int = 3, label: int = 3) -> Prediction:
    return Prediction(f"t10k-{image:05d}", predicted, (0.1,) * 10, label, "mlp", version, "champion", backend,
                      1_000, 1_050)


def test_two_backends_on_one_topic_are_reported_apart() -> None:
    evaluation = Evaluation()
    for image in range(4):
        evaluation.add(prediction(image, "duckdb"))
        evaluation.add(prediction(image, "postgres", predicted=3 if image < 2 else 5))
    assert not evaluation.add(prediction(0, "duckdb")), "a re-sent prediction is a duplicate"

    rows = {(r.backend, r.version): (r.scored, r.correct) for r in evaluation.by_backend()}
    assert rows == {("duckdb", 1): (4, 4), ("postgres", 1): (4, 2)}
    report = evaluation.to_json()
    assert report["images"] == 4 and report["duplicates_ignored"] == 1
    assert report["backends"] == ["duckdb", "postgres"]
    assert [(r["backend"], r["accuracy"]) for r in report["by_backend"]] == [("duckdb", 1.0), ("postgres", 0.5)]
    assert [(r["model_version"], r["scored"]) for r in report["versions"]] == [(1, 8)]


def test_a_stopped_follower_reads_up_to_the_topic_end_before_its_report() -> None:
    # evaluate --follow on Ctrl-C: what the topic held at that moment is in the report, not what the
    # last poll happened to return
    cluster = FakeCluster()
    cluster.create_topic("preds", 2)
    for image in range(30):
        record = prediction(image, "duckdb")
        cluster.append("preds", image % 2, record.image_id.encode(), record.to_json(), record.headers())
    reader = cluster.make_consumer(Settings(), "evaluator")
    reader.assign([TopicPartition("preds", 0, 5), TopicPartition("preds", 1, 0)])  # partition 0 half-read
    evaluation = Evaluation()
    read_to_end(reader, "preds", evaluation)
    assert sorted(evaluation.image_ids()) == sorted(f"t10k-{i:05d}" for i in range(30) if i % 2 or i >= 10)
