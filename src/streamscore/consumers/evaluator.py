"""Read the evaluation topic and track accuracy per model version.

Predictions arrive at least once; they are de-duplicated by (image id, model
version, backend): consumers of different backends (each in its own group) score the same
images, and the report breaks the results down by backend. Completion is decided by
counting (``expect``) or by an idle timeout, never by the high watermark (the embedded
broker reports it wrongly). Records with a ``kind`` (``model-rejected`` events,
:mod:`streamscore.shared.evaluation_events`) are not predictions: they are listed apart,
de-duplicated, and never counted as predictions or as malformed.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka import KafkaError as LibrdkafkaError

from streamscore.errors import KafkaError, MessageError
from streamscore.shared.config import Settings
from streamscore.shared.evaluation_events import MODEL_REJECTED, ModelRejected, record_kind
from streamscore.shared.kafka import assign_from_beginning, make_consumer
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


def topic_answers(consumer: Consumer, topic: str) -> bool:
    """Whether Kafka answers with ``topic`` and its partitions (after an outage; a wiped broker may lack it)."""
    try:
        found = consumer.list_topics(topic, timeout=1.0).topics.get(topic)
    except KafkaException:
        return False
    return found is not None and found.error is None and len(found.partitions) > 0


def read_predictions(
    settings: Settings,
    *,
    follow: bool = False,
    idle_timeout: float = 3.0,
    expect: int | None = None,
    stop: threading.Event | None = None,
    evaluation: Evaluation | None = None,
    unreachable_limit: float | None = None,
) -> Evaluation:
    """Read the topic from the beginning until ``expect`` distinct images, idle, or stop.

    Pass ``evaluation`` to watch it fill from another thread (``evaluate --follow``).
    Kafka unreachable for ``unreachable_limit`` seconds raises KafkaError (``--follow``
    keeps waiting instead, with one warning); by default ``settings.kafka_timeout_s``.
    """
    unreachable_limit = settings.kafka_timeout_s if unreachable_limit is None else unreachable_limit
    evaluation = evaluation if evaluation is not None else Evaluation()
    down_since: list[float] = []  # set by librdkafka's error callback while no broker answers

    def on_error(error: LibrdkafkaError) -> None:
        if error.code() == LibrdkafkaError._ALL_BROKERS_DOWN and not down_since:
            down_since.append(time.monotonic())

    def open_reader() -> Consumer:
        reader = make_consumer(settings, f"{settings.group}.evaluator.{uuid.uuid4().hex[:8]}", error_cb=on_error)
        try:
            reader.list_topics(settings.predictions_topic, timeout=unreachable_limit)
            assign_from_beginning(reader, settings.predictions_topic)
        except KafkaException as exc:
            reader.close()
            raise KafkaError(
                f"cannot read {settings.predictions_topic} from Kafka at {settings.kafka_bootstrap} "
                f"({exc.args[0].str() if exc.args else exc}); is Kafka up? Set STREAMSCORE_KAFKA_BOOTSTRAP "
                "or --bootstrap", reason="kafka-unreachable") from None
        except BaseException:
            reader.close()
            raise
        return reader

    consumer = open_reader()
    try:
        last = time.monotonic()
        seen_ids: set[str] = set()
        warned = False
        probed = 0.0
        while not (stop is not None and stop.is_set()):
            messages = consumer.consume(1000, 0.2)
            if messages:
                down_since.clear()
            elif down_since and time.monotonic() - probed > 1.0:
                probed = time.monotonic()
                if topic_answers(consumer, settings.predictions_topic):
                    # Kafka is back, perhaps a restarted broker that recreated the topic: a client that
                    # kept its positions and leader epochs would never fetch from it; read anew
                    # (what was read before is de-duplicated)
                    try:
                        fresh = open_reader()
                    except KafkaError:
                        continue  # gone again: keep probing
                    consumer.close()
                    consumer = fresh
                    down_since.clear()
                    log.info("Kafka at %s answers again: reading %s anew from the beginning",
                             settings.kafka_bootstrap, settings.predictions_topic)
                    warned, last = False, time.monotonic()
                    continue
            if not messages and down_since and time.monotonic() - down_since[0] > unreachable_limit:
                if not follow:
                    raise KafkaError(
                        f"Kafka at {settings.kafka_bootstrap} unreachable for {unreachable_limit:.0f}s while reading "
                        f"{settings.predictions_topic} ({len(seen_ids)} images read); try again when it is back",
                        reason="kafka-unreachable")
                if not warned:
                    log.warning("Kafka at %s unreachable; still following", settings.kafka_bootstrap)
                    warned = True
            for message in messages:
                if message.error():
                    continue
                prediction = evaluation.add_record(message.headers(), message.value() or b"")
                if prediction is not None:
                    seen_ids.add(prediction.image_id)
            if messages:
                last = time.monotonic()
            if expect is not None and len(seen_ids) >= expect and not follow:
                break
            if not follow and expect is None and not down_since and time.monotonic() - last > idle_timeout:
                break
            if not follow and expect is not None and time.monotonic() - last > max(idle_timeout, 30):
                log.warning("stopped waiting: %d of %d images seen", len(seen_ids), expect)
                break
        if follow and not down_since:  # stopped (Ctrl-C): the report holds what the topic held at that moment
            read_to_end(consumer, settings.predictions_topic, evaluation)
    finally:
        consumer.close()
    return evaluation


def read_to_end(consumer: Consumer, topic: str, evaluation: Evaluation, limit_s: float = 5.0) -> None:
    """Add every record up to the topic's current end (high watermarks now), for at most ``limit_s``."""
    try:
        assignment = consumer.assignment()
        ends = {tp.partition: consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=1.0,
                                                             cached=False)[1] for tp in assignment}
        read = {tp.partition: max(tp.offset, 0) for tp in consumer.position(assignment)}
    except KafkaException:
        return  # Kafka away: the report holds what was read
    deadline = time.monotonic() + limit_s
    while any(read[p] < end for p, end in ends.items()) and time.monotonic() < deadline:
        for message in consumer.consume(1000, 0.2):
            if message.error():
                continue
            read[message.partition() or 0] = (message.offset() or 0) + 1
            evaluation.add_record(message.headers(), message.value() or b"")


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
