"""What report.json carries beside the evaluation: when, with which settings, dead letters, model digests.

``malformed``/``malformed_predictions`` in the evaluation count messages on the evaluation
topic that are not predictions; images that could not be decoded are ``dead_lettered``
(counted on the DLQ topic, by reason), the figure the tables show.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from streamscore.backends.url import mask_url
from streamscore.ops.topic_summary import DeadLetters, count_dead_letters, published_models
from streamscore.shared.config import Settings


def run_settings(settings: Settings, with_backend: bool = True) -> dict[str, Any]:
    """The settings a reader of the report needs to reproduce the run (no secrets: the backend URL is masked)."""
    chosen = {
        "kafka_bootstrap": settings.kafka_bootstrap,
        "images_topic": settings.images_topic,
        "predictions_topic": settings.predictions_topic,
        "models_topic": settings.models_topic,
        "dlq_topic": settings.dlq_topic,
        "group": settings.group,
        "backend": mask_url(settings.backend_url),
        "batch_size": settings.batch_size,
        "linger_ms": settings.linger_ms,
        "duckdb_scorer": settings.duckdb_scorer,
        "model_name": settings.model_name,
    }
    if not with_backend:  # `evaluate` reads predictions of any backend; they name theirs
        for key in ("backend", "batch_size", "linger_ms", "duckdb_scorer", "group"):
            chosen.pop(key)
    return chosen


def report_extras(settings: Settings, dead_letters: DeadLetters | None = None,
                  models: dict[int, str] | None = None, with_backend: bool = True, **run: Any) -> dict[str, Any]:
    """The report's context; reads the DLQ and models topics when not given."""
    dead_letters = dead_letters if dead_letters is not None else count_dead_letters(settings)
    models = models if models is not None else published_models(settings)
    return {
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "settings": run_settings(settings, with_backend),
        "run": run,
        "dead_lettered": dead_letters.to_json(),
        "model_digests": {f"v{version}": digest for version, digest in models.items()},
    }
