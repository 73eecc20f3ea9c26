"""The evaluation breaks results down by backend: two backends scoring the same images are two rows."""

from __future__ import annotations

from streamscore.consumers.evaluator import Evaluation
from streamscore.shared.messages import Prediction


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
