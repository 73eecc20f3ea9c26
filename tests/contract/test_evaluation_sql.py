"""Evaluation in the database (sql/<engine>/evaluation.sql through Backend.evaluation and
Backend.misclassified), checked against the scores write_batch returned, on every reachable engine
(Kinetica: the stand-in runs the statements on DuckDB as written, with the real gpudb client)."""

from __future__ import annotations

from collections import Counter

import numpy as np
from contract_hooks import Scope, make_batch

from streamscore.backends import Backend, ModelRef, ScoredBatch
from streamscore.backends.evaluation import GALLERY_LIMIT, DatabaseEvaluation

UNLABELLED = 10


def outcomes(scored: ScoredBatch, labels: dict[str, int]) -> list[tuple[str, int, int, float]]:
    """(image id, label, predicted, probability of the predicted digit) of every labelled row."""
    rows = []
    for row, image_id in enumerate(scored.image_ids):
        if labels[image_id] >= 0:
            predicted = int(scored.predicted[row])
            rows.append((image_id, labels[image_id], predicted, float(scored.probabilities[row, predicted])))
    return rows


def counts(evaluation: DatabaseEvaluation) -> Counter[tuple[object, ...]]:
    """Every figure of an evaluation as a multiset, so that two can be subtracted (a shared schema)."""
    found: Counter[tuple[object, ...]] = Counter()
    for version in evaluation.versions:
        for name in ("images", "labelled", "correct", "incorrect"):
            found[(version.model_version, name)] += getattr(version, name)
    for digit in evaluation.digits:
        found[(digit.model_version, digit.true_digit, "images")] += digit.images
        found[(digit.model_version, digit.true_digit, "correct")] += digit.correct
    for cell, images in evaluation.confusion.items():
        found[cell] += images
    return found


def test_evaluation_counts_served_predictions_per_version_and_digit(backend: Backend, scope: Scope) -> None:
    before = counts(backend.evaluation())
    backend.install_model(scope.model(1))
    backend.install_model(scope.model(2))
    first, second = make_batch(scope, range(0, 150), "v1"), make_batch(scope, range(150, 300), "v2")
    second.labels[:UNLABELLED] = -1  # no label header: counted as scored, never as right or wrong
    labels = {i: int(label) for batch in (first, second)
              for i, label in zip(batch.image_ids, batch.labels, strict=True)}
    served = {1: outcomes(backend.write_batch(first, scope.ref(1), scope.group), labels),
              2: outcomes(backend.write_batch(second, scope.ref(2), scope.group), labels)}
    backend.write_batch(second, ModelRef(scope.model_name, 1, "shadow"), scope.group)  # stored, never served

    evaluation = backend.evaluation()
    expected: Counter[tuple[object, ...]] = Counter()
    for version, rows in served.items():
        expected[(version, "images")] += 150
        expected[(version, "labelled")] += len(rows)
        for _image_id, label, predicted, _probability in rows:
            expected[(version, "correct" if predicted == label else "incorrect")] += 1
            expected[(version, label, "images")] += 1
            expected[(version, label, "correct")] += int(predicted == label)
            expected[(version, label, predicted)] += 1
    assert counts(evaluation) - before == expected
    for version in evaluation.versions:
        assert version.accuracy is not None and abs(version.accuracy - version.correct / version.labelled) < 1e-12
        assert sum(map(sum, evaluation.confusion_matrix(version.model_version))) == version.labelled
    for digit in evaluation.digits:
        assert digit.images == digit.correct + digit.incorrect
        assert abs(digit.accuracy - digit.correct / digit.images) < 1e-12

    split_pixels = {i: bytes(pixels) for batch in (first, second)
                    for i, pixels in zip(batch.image_ids, batch.pixels, strict=True)}
    gallery = backend.misclassified()
    assert len(gallery) <= 2 * GALLERY_LIMIT or backend.name == "oracle"  # Oracle's schema is shared by tests
    mine = [m for m in gallery if m.image_id.startswith(scope.tag)]
    for version, rows in served.items():
        wrong = {image_id: (label, predicted, p) for image_id, label, predicted, p in rows if predicted != label}
        shown = [m for m in mine if m.model_version == version]
        if backend.name != "oracle":
            assert [m.image_id for m in shown] == sorted(wrong)[:GALLERY_LIMIT]
        for item in shown:
            label, predicted, probability = wrong[item.image_id]
            assert (item.true_digit, item.predicted) == (label, predicted)
            assert np.isclose(item.probability, probability, atol=1e-6)
            assert item.pixels == split_pixels[item.image_id]
