"""`streamscore evaluate --from-backend URL`: the evaluation SQL of the database, as a table and reports.

Runs the named statements of ``sql/<engine>/evaluation.sql`` (``Backend.evaluation`` and
``Backend.misclassified``), prints accuracy per model version and per true digit, and writes
report.json in the topic evaluator's shape (``versions``: model_version, scored, labelled, correct,
accuracy, confusion_matrix, plus incorrect and by_digit), confusion.png and misclassified.png.
It only reads: no schema is created, no model installed.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from streamscore.backends import open_configured_backend
from streamscore.backends.evaluation import DatabaseEvaluation, Misclassified
from streamscore.backends.url import BackendURL, mask_url
from streamscore.consumers.evaluator import VersionReport, draw_confusion
from streamscore.errors import ConfigError
from streamscore.ops.gallery import draw_gallery
from streamscore.shared.config import Settings


@dataclass(frozen=True)
class BackendReport:
    evaluation: DatabaseEvaluation
    misclassified: list[Misclassified]
    backend: str  # the engine's name, as predictions on the topic name it
    report: Path
    confusion: Path
    gallery: Path


def _check_duckdb_file(url: str) -> None:
    """Opening a DuckDB path that does not exist would create an empty file: say what is wrong instead."""
    parsed = BackendURL.parse(url)
    path = parsed.path[1:] if parsed.path.startswith("/") else parsed.path  # as DuckDBBackend reads it
    if parsed.scheme == "duckdb" and path not in ("", ":memory:") and not Path(path).exists():
        raise ConfigError(f"no DuckDB file at {path}: give the file a consumer wrote "
                          "(evaluate --from-backend duckdb:///relative/scores.duckdb or duckdb:////absolute/path)")


def evaluate_backend(settings: Settings, url: str, out: Path) -> BackendReport:
    """Evaluate in the database of ``url`` and write the reports into ``out``."""
    _check_duckdb_file(url)
    backend = open_configured_backend(settings, url)
    with backend:
        evaluation = backend.evaluation()
        misclassified = backend.misclassified()
    versions = [VersionReport(row.model_version, row.images, row.labelled, row.correct,
                              evaluation.confusion_matrix(row.model_version), backend.name)
                for row in evaluation.versions]
    report: dict[str, Any] = evaluation.to_report() | {
        "source": "backend",
        "by_backend": [{"backend": backend.name, "model_version": r.version, "scored": r.scored,
                        "labelled": r.labelled, "correct": r.correct, "accuracy": r.accuracy} for r in versions],
        "backends": [backend.name],
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "settings": {"backend": mask_url(url)},
        "gallery": {"source": "backend", "shown": len(misclassified),
                    "misclassified": {f"v{r.model_version}": r.incorrect for r in evaluation.versions}},
    }
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "report.json"
    json_path.write_text(json.dumps(report, indent=2))
    confusion = draw_confusion(versions, out)
    gallery = draw_gallery(misclassified, out, versions=[r.model_version for r in evaluation.versions],
                           wrong={r.model_version: r.incorrect for r in evaluation.versions})
    return BackendReport(evaluation, misclassified, backend.name, json_path, confusion, gallery)


def print_backend_report(result: BackendReport, url: str, console: Console) -> None:
    console.print(version_table(result.evaluation, f"accuracy per model version in {mask_url(url)}"))
    console.print(digit_table(result.evaluation))
    console.print(f"confusion matrix: {result.confusion}\nmisclassified digits: {result.gallery}\n"
                  f"JSON report: {result.report}")


def version_table(evaluation: DatabaseEvaluation, title: str) -> Table:
    table = Table(title=title)
    for column in ("model version", "images", "labelled", "correct", "incorrect", "accuracy"):
        table.add_column(column, justify="right")
    for row in evaluation.versions:
        accuracy = f"{row.accuracy:.4f}" if row.accuracy is not None else "n/a"
        table.add_row(str(row.model_version), f"{row.images:,}", f"{row.labelled:,}", f"{row.correct:,}",
                      f"{row.incorrect:,}", accuracy)
    return table


def digit_table(evaluation: DatabaseEvaluation) -> Table:
    """One row per true digit; per model version: correct / images (accuracy)."""
    table = Table(title="per true digit: correct / images (accuracy)")
    table.add_column("digit", justify="right")
    versions = [row.model_version for row in evaluation.versions]
    for version in versions:
        table.add_column(f"v{version}", justify="right")
    cells = {(row.model_version, row.true_digit): row for row in evaluation.digits}
    for digit in range(10):
        values = []
        for version in versions:
            row = cells.get((version, digit))
            values.append(f"{row.correct:,} / {row.images:,} ({row.accuracy:.3f})" if row else "–")
        table.add_row(str(digit), *values)
    return table
