"""Track accuracy per model version from the evaluation topic's records, and write the reports.

Predictions arrive at least once; they are de-duplicated by (image id, model
version, backend): consumers of different backends (each in its own group) score the same
images, and the report breaks the results down by backend. Reading the topic (when to stop,
Kafka outages) is :mod:`.prediction_reader`'s. Records with a ``kind`` (``model-rejected`` events,
:mod:`streamscore.shared.evaluation_events`) are not predictions: they are listed apart,
de-duplicated, and never counted as predictions or as malformed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from streamscore.errors import MessageError
from streamscore.shared.evaluation_events import MODEL_REJECTED, ModelRejected, record_kind
from streamscore.shared.messages import Prediction, ReceivedHeaders

log = logging.getLogger(__name__)


@dataclass
class VersionReport:
    version: int
    scored: int
    labelled: int
    correct: int
    confusion: list[list[int]]
    backend: str = ""
    #: the role the predictions were made in (by_role() only): champion, ensemble or shadow
    role: str = ""

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.labelled if self.labelled else None

    def by_digit(self) -> list[dict[str, Any]]:
        """Per true digit with labelled images: images, correct, incorrect, accuracy (the confusion rows)."""
        rows = []
        for digit, counts in enumerate(self.confusion):
            images = sum(counts)
            if images:
                correct = counts[digit]
                rows.append({"digit": digit, "images": images, "correct": correct, "incorrect": images - correct,
                             "accuracy": correct / images})
        return rows

    def to_json(self) -> dict[str, Any]:
        """One entry of report.json's ``versions`` (the backend evaluator writes the same keys)."""
        return {"model_version": self.version, "scored": self.scored, "labelled": self.labelled,
                "correct": self.correct, "incorrect": self.labelled - self.correct, "accuracy": self.accuracy,
                "confusion_matrix": self.confusion, "by_digit": self.by_digit()}


@dataclass
class Evaluation:
    predictions: dict[tuple[str, int, str], Prediction] = field(default_factory=dict)
    duplicates: int = 0
    malformed: int = 0
    #: called with every new (not duplicate) prediction, e.g. by `evaluate --auto-rollback`
    on_new: Callable[[Prediction], None] | None = None
    #: model-rejected events, once per (model, version, reason, backend, group)
    rejections: dict[tuple[str, int | None, str, str, str], ModelRejected] = field(default_factory=dict)
    #: records of a kind this version does not know (written by a newer streamscore): skipped
    other_kinds: int = 0

    def add_record(self, headers: ReceivedHeaders, value: bytes) -> Prediction | None:
        """Take one record of the evaluation topic; returns it when it is a new prediction."""
        kind = record_kind(headers, value)
        if kind is None:
            try:
                prediction = Prediction.from_json(value)
            except MessageError:
                self.malformed += 1
                return None
            return prediction if self.add(prediction) else None
        if kind != MODEL_REJECTED:
            self.other_kinds += 1
            return None
        try:
            event = ModelRejected.from_json(value)
        except MessageError:
            self.malformed += 1
            return None
        self.rejections.setdefault((event.model_name, event.model_version, event.reason, event.backend,
                                    event.group), event)
        return None

    def add(self, prediction: Prediction) -> bool:
        key = (prediction.image_id, prediction.model_version, prediction.backend)
        if key in self.predictions:
            self.duplicates += 1
            return False
        self.predictions[key] = prediction
        if self.on_new is not None:
            self.on_new(prediction)
        return True

    def image_ids(self) -> set[str]:
        return {image_id for image_id, _version, _backend in list(self.predictions)}

    def versions(self) -> list[VersionReport]:
        """One report per model version, every backend together."""
        return self._tally(by_backend=False)

    def by_backend(self) -> list[VersionReport]:
        """One report per (backend, model version)."""
        return self._tally(by_backend=True)

    def by_role(self) -> list[VersionReport]:
        """One report per (model version, role): a shadow phase apart from the same version serving."""
        return self._tally(by_backend=False, by_role=True)

    def by_backend_and_role(self) -> list[VersionReport]:
        """One report per (backend, model version, role): what `evaluate` prints."""
        return self._tally(by_backend=True, by_role=True)

    def backends(self) -> list[str]:
        return sorted({p.backend for p in list(self.predictions.values())})

    def _tally(self, by_backend: bool, by_role: bool = False) -> list[VersionReport]:
        reports: dict[tuple[str, int, str], VersionReport] = {}
        for prediction in list(self.predictions.values()):  # a copy: `evaluate --follow` reads while it fills
            backend = prediction.backend if by_backend else ""
            role = prediction.role if by_role else ""
            report = reports.setdefault((backend, prediction.model_version, role), VersionReport(
                prediction.model_version, 0, 0, 0, [[0] * 10 for _ in range(10)], backend, role))
            report.scored += 1
            if prediction.label is not None:
                report.labelled += 1
                report.correct += int(prediction.label == prediction.predicted)
                report.confusion[prediction.label][prediction.predicted] += 1
        return [reports[key] for key in sorted(reports)]

    def latencies_ms(self) -> np.ndarray[Any, np.dtype[np.int64]]:
        values = [p.scored_at - p.produced_at for p in list(self.predictions.values()) if p.produced_at > 0]
        return np.asarray(values, np.int64)

    def latency_percentiles(self) -> dict[str, float]:
        values = self.latencies_ms()
        if not len(values):
            return {}
        p50, p95, p99 = np.percentile(values, [50, 95, 99])
        return {"p50_ms": float(p50), "p95_ms": float(p95), "p99_ms": float(p99), "max_ms": float(values.max())}

    def throughput(self) -> float | None:
        """Images scored per second between the first and the last prediction."""
        stamps = [p.scored_at for p in self.predictions.values()]
        if len(stamps) < 2 or max(stamps) == min(stamps):
            return None
        return len(self.image_ids()) / ((max(stamps) - min(stamps)) / 1000)

    def to_json(self) -> dict[str, Any]:
        return {
            "images": len(self.image_ids()),
            "predictions": len(self.predictions),
            "duplicates_ignored": self.duplicates,
            "malformed": self.malformed,  # messages on the evaluation topic that are not predictions
            "malformed_predictions": self.malformed,
            "model_rejections": [
                {"model_name": e.model_name, "model_version": e.model_version, "reason": e.reason,
                 "message": e.message, "at": e.at, "backend": e.backend, "group": e.group}
                for e in sorted(list(self.rejections.values()), key=lambda e: e.at)
            ],
            "versions": [report.to_json() for report in self.versions()],
            "by_backend": [
                {"backend": r.backend, "model_version": r.version, "scored": r.scored, "labelled": r.labelled,
                 "correct": r.correct, "accuracy": r.accuracy}
                for r in self.by_backend()
            ],
            "backends": self.backends(),
            "latency": self.latency_percentiles(),
            "throughput_images_per_s": self.throughput(),
        }


def write_reports(evaluation: Evaluation, out_dir: Path, extra: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """Write report.json (the evaluation, plus ``extra``: run settings, dead letters…) and confusion.png."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "report.json"
    json_path.write_text(json.dumps(evaluation.to_json() | (extra or {}), indent=2))
    return draw_confusion(evaluation.versions(), out_dir), json_path


def draw_confusion(versions: list[VersionReport], out_dir: Path) -> Path:
    """Write ``out_dir/confusion.png``: one confusion matrix per model version."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    versions = versions or [VersionReport(0, 0, 0, 0, [[0] * 10 for _ in range(10)])]
    fig, axes = plt.subplots(1, len(versions), figsize=(4.6 * len(versions), 4.4), squeeze=False)
    for ax, report in zip(axes[0], versions, strict=True):
        matrix = np.asarray(report.confusion)
        ax.imshow(matrix, cmap="Blues")
        for (i, j), count in np.ndenumerate(matrix):
            if count:
                ax.text(j, i, str(count), ha="center", va="center", fontsize=6,
                        color="white" if count > matrix.max() / 2 else "black")
        accuracy = f"{report.accuracy:.4f}" if report.accuracy is not None else "n/a"
        ax.set_title(f"model v{report.version}: accuracy {accuracy}")
        ax.set_xlabel("predicted")
        ax.set_ylabel("label")
        ax.set_xticks(range(10))
        ax.set_yticks(range(10))
    fig.tight_layout()
    png_path = out_dir / "confusion.png"
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
    return png_path
