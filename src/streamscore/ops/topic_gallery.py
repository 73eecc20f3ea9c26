"""The topic evaluator's gallery: misclassified predictions, their pixels read back from the images topic.

Predictions carry no pixels (the evaluation topic's format is public and stays as it is), and the
topic evaluator needs no database, so the pixels come from where the predictions came from: the
images topic, keyed by image id. Per model version the first :data:`GALLERY_LIMIT` misclassified
images by image id are shown — the same choice as ``evaluation_misclassified`` in
sql/<engine>/evaluation.sql, so both galleries of one stream show the same digits.

The images topic is read from the beginning until every wanted id is found, or until nothing new
arrived for ``idle`` seconds (completion by counting, never by the high watermark, which the
embedded broker reports wrongly). An image the topic no longer holds (retention) is counted as
missing and left out of the grid.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from streamscore.backends.evaluation import GALLERY_LIMIT, PIXELS, Misclassified
from streamscore.consumers.evaluator import Evaluation
from streamscore.shared.config import Settings
from streamscore.shared.kafka import assign_from_beginning, make_consumer
from streamscore.shared.messages import Prediction

log = logging.getLogger(__name__)

#: the longest a gallery read of the images topic may take, whatever arrives
READ_LIMIT_S = 120.0


@dataclass
class TopicGallery:
    """What the gallery shows, and what it could not (per model version)."""

    items: list[Misclassified]
    versions: list[int]
    wrong: dict[int, int] = field(default_factory=dict)  # misclassified predictions in all
    missing: dict[int, int] = field(default_factory=dict)  # chosen, but no pixels on the images topic

    def to_json(self) -> dict[str, object]:
        return {"source": "images topic", "shown": len(self.items),
                "misclassified": {f"v{v}": n for v, n in sorted(self.wrong.items())},
                "pixels_missing": {f"v{v}": n for v, n in sorted(self.missing.items()) if n}}


def chosen_predictions(evaluation: Evaluation, limit: int = GALLERY_LIMIT) -> tuple[dict[int, list[Prediction]],
                                                                                      dict[int, int]]:
    """Per model version the first ``limit`` misclassified predictions by image id (one per image:
    several backends may have scored it), and how many there are in all."""
    wrong: dict[int, dict[str, Prediction]] = {}
    for prediction in list(evaluation.predictions.values()):
        if prediction.label is not None and prediction.predicted != prediction.label:
            wrong.setdefault(prediction.model_version, {}).setdefault(prediction.image_id, prediction)
    chosen = {version: [by_id[i] for i in sorted(by_id)[:limit]] for version, by_id in wrong.items()}
    return chosen, {version: len(by_id) for version, by_id in wrong.items()}


def read_pixels(settings: Settings, wanted: Iterable[str], idle: float = 2.0) -> dict[str, bytes]:
    """The 784 pixel bytes of each ``wanted`` image id found on the images topic (first occurrence)."""
    missing = set(wanted)
    found: dict[str, bytes] = {}
    if not missing:
        return found
    consumer = make_consumer(settings, f"{settings.group}.gallery.{uuid.uuid4().hex[:8]}")
    try:
        assign_from_beginning(consumer, settings.images_topic)
        started = last = time.monotonic()
        while missing and time.monotonic() - last < idle and time.monotonic() - started < READ_LIMIT_S:
            messages = consumer.consume(1000, 0.2)
            if messages:
                last = time.monotonic()
            for message in messages:
                key, value = message.key(), message.value()
                if message.error() or key is None or value is None or len(value) != PIXELS:
                    continue
                image_id = key.decode("utf-8", "replace")
                if image_id in missing:
                    found[image_id] = bytes(value)
                    missing.discard(image_id)
    finally:
        consumer.close()
    if missing:
        log.warning("%d misclassified image(s) not found on %s (retention?), e.g. %r: left out of the gallery",
                    len(missing), settings.images_topic, min(missing))
    return found


def topic_gallery(settings: Settings, evaluation: Evaluation, idle: float = 2.0) -> TopicGallery:
    """The misclassified digits of ``evaluation`` with their pixels from the images topic."""
    chosen, wrong = chosen_predictions(evaluation)
    pixels = read_pixels(settings, {p.image_id for shown in chosen.values() for p in shown}, idle)
    items: list[Misclassified] = []
    missing: dict[int, int] = {}
    for version, shown in chosen.items():
        for p in shown:
            if p.image_id not in pixels:
                missing[version] = missing.get(version, 0) + 1
                continue
            probability = p.probabilities[p.predicted] if p.predicted < len(p.probabilities) else float("nan")
            items.append(Misclassified(p.model_version, p.image_id, int(p.label or 0), p.predicted, probability,
                                       pixels[p.image_id]))
    versions = sorted({report.version for report in evaluation.versions()})
    return TopicGallery(items, versions, wrong, missing)
