"""The gallery of misclassified digits: which predictions the topic evaluator shows, and the drawing."""

from __future__ import annotations

from pathlib import Path

from streamscore.backends.evaluation import GALLERY_LIMIT, DatabaseEvaluation, Misclassified
from streamscore.consumers.evaluator import Evaluation
from streamscore.ops.gallery import draw_gallery
from streamscore.ops.topic_gallery import chosen_predictions
from streamscore.shared.messages import Prediction


def prediction(image: int, version: int, predicted: int, label: int | None, backend: str = "duckdb") -> Prediction:
    probabilities = tuple(0.9 if k == predicted else 0.01 for k in range(10))
    return Prediction(f"t10k-{image:05d}", predicted, probabilities, label, "mlp", version, "champion", backend,
                      1_000, 1_050)


def test_the_first_misclassified_by_image_id_per_version_once_each() -> None:
    evaluation = Evaluation()
    for image in reversed(range(80)):  # arrival order must not matter
        evaluation.add(prediction(image, 1, predicted=(image + 1) % 10, label=image % 10))
        evaluation.add(prediction(image, 1, predicted=(image + 1) % 10, label=image % 10, backend="postgres"))
    evaluation.add(prediction(100, 2, predicted=3, label=3))  # right
    evaluation.add(prediction(101, 2, predicted=4, label=None))  # no label: neither right nor wrong
    evaluation.add(prediction(102, 2, predicted=5, label=6))
    chosen, wrong = chosen_predictions(evaluation)
    assert wrong == {1: 80, 2: 1}, "an image two backends scored is one misclassified image"
    assert [p.image_id for p in chosen[1]] == [f"t10k-{i:05d}" for i in range(GALLERY_LIMIT)]
    assert [p.image_id for p in chosen[2]] == ["t10k-00102"]


def test_the_gallery_draws_every_version_also_one_without_mistakes(tmp_path: Path) -> None:
    items = [Misclassified(1, f"t10k-{i:05d}", 7, 1, 0.5 + i / 100, bytes(range(256)) * 3 + bytes(16))
             for i in range(12)]
    path = draw_gallery(items, tmp_path, versions=[1, 2], wrong={1: 40, 2: 0}, missing={1: 1})
    assert path == tmp_path / "misclassified.png"
    assert path.stat().st_size > 5_000


def test_the_database_report_has_the_topic_reports_shape() -> None:
    evaluation = DatabaseEvaluation.from_rows(
        versions=[(1, 5, 4, 3, 1, 0.75)], digits=[(1, 2, 3, 3, 0, 1.0), (1, 7, 1, 0, 1, 0.0)],
        confusion=[(1, 2, 2, 3), (1, 7, 1, 1)])
    topic = Evaluation()
    for image, (predicted, label) in enumerate([(2, 2), (2, 2), (2, 2), (1, 7), (4, None)]):
        topic.add(prediction(image, 1, predicted, label))
    assert evaluation.to_report()["versions"] == topic.to_json()["versions"]
