"""What the in-database evaluation returns (``Backend.evaluation``, ``Backend.misclassified``).

The SQL is ``sql/<engine>/evaluation.sql``, one file per engine, written for the engine's own
console; every engine returns the same columns in the same order, and the rows become these
plain records here (driver types such as Decimal, memoryview or Oracle's NUMBER are converted
once, in one place). ``DatabaseEvaluation.to_report`` has the shape of the topic evaluator's
report.json (``versions``: model_version, scored, labelled, correct, accuracy, confusion_matrix).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from streamscore.errors import BackendError

#: the named statements of every engine's evaluation.sql, and the columns each returns, in order
STATEMENTS: dict[str, tuple[str, ...]] = {
    "evaluation_by_version": ("model_version", "images", "labelled", "correct", "incorrect", "accuracy"),
    "evaluation_by_digit": ("model_version", "true_digit", "images", "correct", "incorrect", "accuracy"),
    "evaluation_confusion": ("model_version", "true_digit", "predicted", "images"),
    "evaluation_misclassified": ("model_version", "image_id", "true_digit", "predicted", "probability", "pixels"),
}
#: misclassified images per model version the SQL returns (the gallery's grid)
GALLERY_LIMIT = 50
PIXELS = 784
Row = Sequence[Any]


def _accuracy(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True)
class DigitRow:
    """One model version and true digit: images with that label, correct, incorrect, accuracy."""

    model_version: int
    true_digit: int
    images: int
    correct: int
    incorrect: int
    accuracy: float

    @classmethod
    def from_row(cls, row: Row) -> DigitRow:
        version, digit, images, correct, incorrect, accuracy = row
        return cls(int(version), int(digit), int(images), int(correct), int(incorrect), float(accuracy))

    def to_json(self) -> dict[str, Any]:
        return {"digit": self.true_digit, "images": self.images, "correct": self.correct,
                "incorrect": self.incorrect, "accuracy": self.accuracy}


@dataclass(frozen=True)
class VersionRow:
    """One model version: served predictions (``images``), labelled ones, correct, incorrect, accuracy."""

    model_version: int
    images: int
    labelled: int
    correct: int
    incorrect: int
    accuracy: float | None  # None when no prediction of the version has a label

    @classmethod
    def from_row(cls, row: Row) -> VersionRow:
        version, images, labelled, correct, incorrect, accuracy = row
        return cls(int(version), int(images), int(labelled), int(correct or 0), int(incorrect or 0),
                   _accuracy(accuracy))


@dataclass(frozen=True)
class Misclassified:
    """A misclassified image: what it is, what the model said with which probability, its pixels."""

    model_version: int
    image_id: str
    true_digit: int
    predicted: int
    probability: float
    pixels: bytes  # 784 bytes, row-major 28x28

    @classmethod
    def from_row(cls, row: Row) -> Misclassified:
        version, image_id, digit, predicted, probability, pixels = row
        raw = pixels.read() if hasattr(pixels, "read") else pixels  # an Oracle LOB, if a driver returns one
        data = bytes(raw)
        if len(data) != PIXELS:
            raise BackendError(f"image {image_id!r} has {len(data)} pixel bytes in the database, not {PIXELS}")
        return cls(int(version), str(image_id), int(digit), int(predicted), float(probability), data)


@dataclass(frozen=True)
class DatabaseEvaluation:
    """The rows of evaluation.sql: per version, per (version, true digit), and the confusion cells."""

    versions: list[VersionRow]
    digits: list[DigitRow]
    #: (model_version, true digit, predicted digit) → images; only non-empty cells
    confusion: dict[tuple[int, int, int], int] = field(default_factory=dict)

    @classmethod
    def from_rows(cls, versions: Sequence[Row], digits: Sequence[Row], confusion: Sequence[Row]) -> DatabaseEvaluation:
        cells = {(int(v), int(t), int(p)): int(n) for v, t, p, n in confusion}
        return cls([VersionRow.from_row(r) for r in versions], [DigitRow.from_row(r) for r in digits], cells)

    def confusion_matrix(self, version: int) -> list[list[int]]:
        """10 × 10 counts, row = true digit, column = predicted digit (as in the topic report)."""
        matrix = [[0] * 10 for _ in range(10)]
        for (cell_version, true_digit, predicted), count in self.confusion.items():
            if cell_version == version:
                matrix[true_digit][predicted] = count
        return matrix

    def by_digit(self, version: int) -> list[DigitRow]:
        return [row for row in self.digits if row.model_version == version]

    def to_report(self) -> dict[str, Any]:
        """The evaluation part of report.json, in the topic evaluator's shape (plus incorrect, by_digit)."""
        return {
            "predictions": sum(row.images for row in self.versions),
            "versions": [
                {"model_version": row.model_version, "scored": row.images, "labelled": row.labelled,
                 "correct": row.correct, "incorrect": row.incorrect, "accuracy": row.accuracy,
                 "confusion_matrix": self.confusion_matrix(row.model_version),
                 "by_digit": [digit.to_json() for digit in self.by_digit(row.model_version)]}
                for row in self.versions
            ],
        }
