"""What the dashboard serves as JSON: ``/api/summary`` (the public shape) and the page's full state.

``/api/summary`` is exactly (issue 14)::

    {"versions": {"<model_version>": {"predictions": int, "correct": int, "accuracy": float}},
     "dlq": {"<reason>": int}, "throughput_per_s": float, "latency_ms": {"p50": float, "p99": float}}

counting each (image id, model version) once, served predictions only. ``accuracy`` is
correct / labelled predictions (0.0 while none is labelled); latency is produced-at → scored-at
over every counted prediction that has a produced-at (0.0 while none has);
``throughput_per_s`` is over the newest 10 s of stream time (see :mod:`.live`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from streamscore.dashboard.live import SERVED_ROLES, LiveEvaluation
from streamscore.dashboard.pixels import PixelCache
from streamscore.dashboard.topics import PublishedModels
from streamscore.ops.topic_summary import DeadLetters

#: a model seen as a shadow this close (ms of stream time) to the newest prediction is still a shadow
SHADOW_RECENT_MS = 60_000


@dataclass
class Sources:
    """Everything the dashboard's readers fill, as the views read it."""

    evaluation: LiveEvaluation
    dead_letters: DeadLetters
    models: PublishedModels
    pixels: PixelCache


def summary(sources: Sources, dead_letters: dict[str, int]) -> dict[str, Any]:
    evaluation = sources.evaluation
    versions = {
        str(r.version): {"predictions": r.scored, "correct": r.correct,
                         "accuracy": r.correct / r.labelled if r.labelled else 0.0}
        for r in evaluation.versions()
    }
    latencies = evaluation.latencies_ms()
    p50, p99 = (float(v) for v in np.percentile(latencies, [50, 99])) if len(latencies) else (0.0, 0.0)
    return {"versions": versions, "dlq": dead_letters, "throughput_per_s": evaluation.recent_throughput(),
            "latency_ms": {"p50": p50, "p99": p99}}


def state(sources: Sources, dead_letters: dict[str, int], now_ms: int) -> dict[str, Any]:
    """The page's whole state: the summary plus what the charts, tables and gallery draw."""
    evaluation = sources.evaluation
    reports = evaluation.versions()
    names = evaluation.model_names()
    return {
        "summary": summary(sources, dead_letters),
        "generated_at": now_ms,
        "last_scored_at": evaluation.last_scored_at(),
        "images": evaluation.image_count(),
        "predictions": sum(r.scored for r in reports),
        "duplicates_ignored": evaluation.duplicates,
        "shadow_predictions": evaluation.shadow_predictions,
        "malformed_predictions": evaluation.malformed,
        "versions": [
            {"model_version": r.version, "model_name": names.get(r.version, ""), "predictions": r.scored,
             "labelled": r.labelled, "correct": r.correct, "accuracy": r.correct / r.labelled if r.labelled else None,
             "confusion_matrix": r.confusion}
            for r in reports
        ],
        "accuracy_series": {str(v): points for v, points in evaluation.accuracy_series().items()},
        "throughput_series": evaluation.throughput_series(),
        "misclassified": [
            {"image_id": m.image_id, "model_version": m.model_version, "label": m.label, "predicted": m.predicted,
             "probability": m.probability, "has_pixels": sources.pixels.has(m.image_id)}
            for m in evaluation.misclassified()
        ],
        "dlq_total": sum(dead_letters.values()),
        "models": models_in_force(sources),
    }


def models_in_force(sources: Sources) -> list[dict[str, Any]]:
    """Every model published or seen scoring, with its role now.

    ``champion``/``ensemble``: the model of the newest served prediction; ``shadow``: seen scoring
    as a shadow within SHADOW_RECENT_MS of the newest prediction; else ``published`` (newer than the
    one serving: not switched to yet, or refused: see ``problem``) or ``retired``.
    """
    evaluation = sources.evaluation
    roles_seen = evaluation.roles_seen()
    serving = evaluation.serving()
    newest = max(roles_seen.values(), default=0)
    published = {(m.name, m.version): m for m in sources.models.all()}
    counts = {r.version: r.scored for r in evaluation.versions()}
    names = {(name, version) for name, version, _role in roles_seen} | set(published)
    rows = []
    for name, version in sorted(names):
        served = any(role in SERVED_ROLES for (n, v, role) in roles_seen if (n, v) == (name, version))
        shadow_at = roles_seen.get((name, version, "shadow"), 0)
        if serving is not None and serving[:2] == (name, version):
            role = serving[2]
        elif shadow_at and shadow_at >= newest - SHADOW_RECENT_MS:
            role = "shadow"
        elif serving is None or (serving[0] == name and version > serving[1]):
            role = "published"
        else:
            role = "retired"
        model = published.get((name, version))
        rows.append({
            "model_name": name, "model_version": version, "role": role,
            "served_predictions": counts.get(version, 0) if served else 0,
            "last_scored_at": max((at for (n, v, _r), at in roles_seen.items() if (n, v) == (name, version)),
                                  default=None),
            "sha256": model.sha256 if model else None,
            "test_accuracy": model.test_accuracy if model else None,
            "problem": model.problem if model else "",
        })
    return rows
