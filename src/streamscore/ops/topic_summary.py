"""What the models and dead-letter topics hold, read whole (for `status`, `evaluate` and the demo's report).

Topics are read from the beginning until nothing arrives for ``idle_s`` seconds, never up to
the high watermark (wrong on the embedded broker). Dead letters are counted by distinct
source (topic, partition, offset): the DLQ is at-least-once, a crash can send one twice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from streamscore.shared.config import Settings
from streamscore.shared.kafka import assign_from_beginning, make_consumer
from streamscore.shared.messages import header_model_version, headers_to_dict
from streamscore.shared.model_records import ARTIFACT, PLAIN, record_kind


def read_whole_topic(settings: Settings, topic: str, idle_s: float = 1.0) -> list[Any]:
    """Every message of a topic, read from the beginning until nothing arrives for ``idle_s``."""
    consumer = make_consumer(settings, f"{settings.group}.reader.{uuid.uuid4().hex[:8]}")
    try:
        if not assign_from_beginning(consumer, topic):
            return []
        messages: list[Any] = []
        while batch := consumer.consume(1000, idle_s):
            messages.extend(m for m in batch if not m.error())
        return messages
    finally:
        consumer.close()


@dataclass
class DeadLetters:
    """Distinct dead letters by ``error.reason``; fed one message at a time (also by the live dashboard)."""

    total: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    _sources: set[tuple[bytes, bytes, bytes]] = field(default_factory=set, repr=False)

    def add(self, headers: dict[str, bytes]) -> bool:
        """Count one DLQ message (decoded headers); False when its source was already counted."""
        source = (headers.get("source.topic", b""), headers.get("source.partition", b""),
                  headers.get("source.offset", b""))
        if source in self._sources:
            return False  # re-sent after a crash (the DLQ is at-least-once, like the predictions)
        self._sources.add(source)
        reason = headers.get("error.reason", b"?").decode("utf-8", "replace")
        self.by_reason[reason] = self.by_reason.get(reason, 0) + 1
        self.total = len(self._sources)
        return True

    def to_json(self) -> dict[str, Any]:
        return {"total": self.total, "by_reason": dict(sorted(self.by_reason.items()))}


def count_dead_letters(settings: Settings, idle_s: float = 1.0) -> DeadLetters:
    """Distinct dead letters on the DLQ topic, by ``error.reason``."""
    counted = DeadLetters()
    for message in read_whole_topic(settings, settings.dlq_topic, idle_s):
        counted.add(headers_to_dict(message.headers()))
    return counted


def published_models(settings: Settings, idle_s: float = 1.0) -> dict[int, str]:
    """Model versions of ``settings.model_name`` on the models topic → sha256 of the artifact (hex)."""
    versions: dict[int, str] = {}
    for message in read_whole_topic(settings, settings.models_topic, idle_s):
        headers = headers_to_dict(message.headers())
        if record_kind(message.key(), headers, settings.model_name) not in (ARTIFACT, PLAIN):
            continue  # another model's, or a lifecycle snapshot (`streamscore models list` shows those)
        version = header_model_version(headers)
        if version is None:
            continue
        versions[version] = headers.get("sha256", b"").decode("latin-1")
    return dict(sorted(versions.items()))
