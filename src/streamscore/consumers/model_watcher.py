"""Watch the models topic; verify, install and canary-check new versions.

A candidate is accepted only when: its key is our model name, the ``sha256``
header matches the value, the artifact parses and passes validation (shapes
784 → … → 10, digest of the weights, activations), the ``model-version`` header
agrees with the manifest, the signature verifies when a signing key is set, the
version is newer than the one serving, and the database scores the manifest's
canary images exactly as the numpy reference does. Anything else is logged with
its reason and ignored; the current model keeps serving.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from streamscore.backends.base import Backend, ModelRef
from streamscore.errors import ArtifactError, BackendError
from streamscore.logs import event
from streamscore.model.artifact import ModelArtifact
from streamscore.model.reference import predict
from streamscore.model.signing import verify
from streamscore.shared.config import Settings
from streamscore.shared.kafka import assign_from_beginning, make_consumer
from streamscore.shared.messages import header_model_version, headers_to_dict

log = logging.getLogger(__name__)

#: a reader that has seen no record of the served model after this long warns that the topic lost it
WIPED_TOPIC_GRACE_S = 10.0
#: how often a reader checks that the models topic still holds the records it has read
WIPE_CHECK_S = 5.0
#: rejections the watcher remembers (tests and status; each one is also logged)
REJECTIONS_KEPT = 100


@dataclass
class Rejection:
    version: int | None
    reason: str
    message: str


@dataclass
class ModelWatcher:
    settings: Settings
    backend: Backend
    current: ModelArtifact | None = None
    #: the latest rejections (bounded: a reader restarted after an outage reads and rejects them again)
    rejected: deque[Rejection] = field(default_factory=lambda: deque(maxlen=REJECTIONS_KEPT))
    #: builds the models-topic reader (settings, group, **overrides); tests inject a fake
    consumer_factory: Callable[..., Consumer] = make_consumer
    _consumer: Consumer | None = None
    #: when the current reader started, whether it has seen any record of our model since, and
    #: whether it has already warned that it found none
    _reading_since: float = 0.0
    _seen_own_model: bool = False
    _warned_topic_lost_model: bool = False
    #: per partition, the offset after the last record read, and when the topic was last checked
    _read_upto: dict[int, int] = field(default_factory=dict)
    _wipe_checked_at: float = 0.0

    @property
    def current_ref(self) -> ModelRef | None:
        return None if self.current is None else ModelRef(self.current.name, self.current.version)

    def resume_from_database(self) -> ModelArtifact | None:
        """Serve the newest version already installed (a restart needs no models-topic replay)."""
        versions = self.backend.installed_versions(self.settings.model_name)
        if versions:
            self.current = self.backend.load_model(ModelRef(self.settings.model_name, versions[-1]))
            log.info("serving model %s v%d from the database", self.current.name, self.current.version)
        return self.current

    def start(self) -> Consumer:
        # a private group that never commits: every watcher reads the whole topic
        consumer = self.consumer_factory(
            self.settings, f"{self.settings.group}.models.{uuid.uuid4().hex[:8]}",
            **{"partition.assignment.strategy": "range", "fetch.wait.max.ms": 100},
        )
        assign_from_beginning(consumer, self.settings.models_topic)
        self._consumer = consumer
        self._reading_since, self._seen_own_model, self._warned_topic_lost_model = time.monotonic(), False, False
        self._read_upto, self._wipe_checked_at = {}, time.monotonic()
        return consumer

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    def poll(self, timeout: float = 0.0) -> ModelArtifact | None:
        """Read what has arrived; install and return the newest acceptable version, if any."""
        consumer = self._consumer or self.start()
        candidates: list[ModelArtifact] = []
        for message in consumer.consume(64, timeout):
            if message.error():
                log.warning("models topic: %s", message.error())
                continue
            partition, offset = message.partition(), message.offset()
            if partition is not None and offset is not None:
                self._read_upto[partition] = offset + 1
            if (message.key() or b"") == self.settings.model_name.encode():
                self._seen_own_model = True
            artifact = self._verify(message)
            if artifact is not None:
                candidates.append(artifact)
        self._warn_if_topic_lost_the_model()
        self._restart_if_topic_was_wiped(consumer)
        for artifact in sorted(candidates, key=lambda a: a.version, reverse=True):
            if self._install(artifact):
                return artifact
        return None

    def _restart_if_topic_was_wiped(self, consumer: Consumer) -> None:
        """Read the topic anew when it ends before what this reader has already read.

        A broker restarted without its data (or a deleted and recreated topic) leaves a reader
        waiting past the end of an empty log; a fresh reader reads what the topic holds now, and
        warns after the grace period if that no longer includes the served model.
        """
        now = time.monotonic()
        if not self._read_upto or now - self._wipe_checked_at < WIPE_CHECK_S:
            return
        self._wipe_checked_at = now
        topic = self.settings.models_topic
        for partition, upto in self._read_upto.items():
            try:
                _, end = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=0.5, cached=False)
            except KafkaException:
                return  # Kafka away: the loop's outage handling says so; check again later
            if end < upto:
                log.info("models topic %s[%d] ends at offset %d, before the %d record(s) already read "
                         "(deleted, or the broker restarted without its data): reading it again",
                         topic, partition, end, upto, extra=event("models-topic-reset", partition=partition))
                self.close()
                return

    def _warn_if_topic_lost_the_model(self) -> None:
        """Say so, once per reader, when the models topic no longer holds the model being served.

        A restarted embedded broker (memory storage) or a deleted topic loses every artifact: this
        consumer keeps serving the version installed in its database, but a new consumer would
        find no model until it is published again.
        """
        if (self.current is None or self._seen_own_model or self._warned_topic_lost_model
                or time.monotonic() - self._reading_since < WIPED_TOPIC_GRACE_S):
            return
        self._warned_topic_lost_model = True
        log.warning("the models topic %s holds no record of model %s (deleted, or an embedded broker restarted "
                    "without its data): still serving v%d from the database; publish it again "
                    "(`streamscore publish-model PATH`) so that new consumers find it",
                    self.settings.models_topic, self.current.name, self.current.version,
                    extra=event("models-topic-empty", model=self.current.name, version=self.current.version))

    def _reject(self, version: int | None, reason: str, message: str) -> None:
        self.rejected.append(Rejection(version, reason, message))
        log.warning("model artifact v%s rejected (%s): %s; the current model keeps serving",
                    version if version is not None else "?", reason, message)

    def _verify(self, message: Message) -> ModelArtifact | None:
        key = (message.key() or b"").decode("utf-8", "replace")
        if key != self.settings.model_name:
            return None  # another model on the shared topic
        headers = headers_to_dict(message.headers())
        value = message.value() or b""
        header_version = header_model_version(headers)
        if hashlib.sha256(value).hexdigest() != headers.get("sha256", b"").decode("latin-1"):
            self._reject(header_version, "bad-digest", "sha256 header does not match the message value")
            return None
        try:
            artifact = ModelArtifact.from_bytes(value)
        except ArtifactError as exc:
            self._reject(header_version, exc.reason, exc.message)
            return None
        if header_version != artifact.version:
            self._reject(header_version, "version-mismatch",
                         f"header model-version {header_version} != manifest version {artifact.version}")
            return None
        if self.settings.signing_key is not None and not verify(
            artifact.sha256, headers.get("signature", b"").decode("latin-1") or None,
            self.settings.signing_key.get_secret_value(),
        ):
            self._reject(artifact.version, "bad-signature", "signature missing or not valid for the signing key")
            return None
        if self.current is not None and artifact.version <= self.current.version:
            log.debug("model v%d ignored: not newer than v%d", artifact.version, self.current.version)
            return None
        return artifact

    def _install(self, artifact: ModelArtifact) -> bool:
        ref = ModelRef(artifact.name, artifact.version)
        try:
            self.backend.install_model(artifact)
            if artifact.canary_pixels is not None and "canary" in artifact.manifest:
                got = predict(self.backend.score(artifact.canary_pixels, ref)).tolist()
                expected = [int(c) for c in artifact.manifest["canary"]]
                if not np.array_equal(got, expected):
                    self._reject(artifact.version, "canary-failed",
                                 f"in-database scores {got} differ from the reference {expected}")
                    return False
        except BackendError as exc:
            if exc.retriable:
                raise
            self._reject(artifact.version, exc.reason, exc.message)
            return False
        previous = self.current_ref
        self.current = artifact
        log.info("model %s v%d installed and serving (was %s)", artifact.name, artifact.version, previous)
        return True
