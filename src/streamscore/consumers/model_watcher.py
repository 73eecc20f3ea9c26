"""Watch the models topic; verify, install and canary-check new versions.

A candidate is accepted only when: its key is our model name, the ``sha256``
header matches the value, the artifact parses and passes validation (shapes
784 → … → 10, digest of the weights, activations), the ``model-version`` header
agrees with the manifest, the signature verifies when a public key is configured
(:mod:`.signature_check`), the version is newer than the one serving, and the database
scores the manifest's canary images exactly as the numpy reference does. Anything else
is rejected: logged with its reason, handed to ``on_reject`` (the scorer publishes it on
the evaluation topic, :mod:`.rejections`) once per (version, reason), and the current
model keeps serving. A candidate whose install fails on a database outage stays pending
and is installed by a later :meth:`ModelWatcher.poll` (the scorer backs off in between). A version
published while the reader runs is installed and checked ahead, on a second session
(:mod:`.install_ahead`); poll decides once that has ended.

Model lifecycles (issue 12, :mod:`.lifecycle_tracker`): lifecycle snapshots and versioned artifact
records (:mod:`streamscore.shared.model_records`) go to the tracker, which decides the
:class:`ServingSet` (champion or ensemble, plus shadows); :meth:`ModelWatcher.serving_set` is what the
next batch is scored by. Without any lifecycle record the plain records decide, as before.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Consumer, KafkaException, Message, TopicPartition

from streamscore.backends.base import Backend, ModelRef, ServingSet
from streamscore.consumers.canary import canary_mismatch
from streamscore.consumers.install_ahead import InstallAhead
from streamscore.consumers.lifecycle_tracker import LifecycleTracker
from streamscore.consumers.signature_check import SignatureCheck
from streamscore.errors import ArtifactError, BackendError
from streamscore.logs import event
from streamscore.model.artifact import ModelArtifact
from streamscore.shared.config import Settings
from streamscore.shared.kafka import assign_from_beginning, make_consumer
from streamscore.shared.messages import header_model_version, headers_to_dict
from streamscore.shared.model_records import ARTIFACT, LIFECYCLE, PLAIN, record_kind

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
    #: called once per (version, reason) rejected (the scorer reports it; see .rejections)
    on_reject: Callable[[Rejection], None] = lambda rejection: None
    #: the signature check; built from the settings when not given (logs once when unverified)
    signatures: SignatureCheck | None = None
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
    #: (version, reason) already rejected; the candidate whose install a database outage interrupted;
    #: epoch ms when the current reader started (records published before it are the topic's history)
    _reported: set[tuple[int | None, str]] = field(default_factory=set)
    _pending: ModelArtifact | None = None
    _reading_since_ms: int = 0
    #: the versions in force under a model lifecycle (None: the plain records' newest serves alone)
    serving: ServingSet | None = None
    lifecycle: LifecycleTracker = field(init=False)
    #: installs tried (the scorer keeps housekeeping out of a gap that had one); new versions installed
    #: ahead on a second session (:mod:`.install_ahead`); plain records held while one is
    installs: int = 0
    ahead: InstallAhead = field(init=False)
    _held: list[tuple[ModelArtifact, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.signatures is None:
            self.signatures = SignatureCheck.from_settings(self.settings)
        self.lifecycle = LifecycleTracker(self.settings.model_name, self.backend)
        chosen = self.settings.install_ahead  # None: the engine's default
        self.ahead = InstallAhead(self.backend.session, self.backend.install_ahead if chosen is None else chosen)

    @property
    def current_ref(self) -> ModelRef | None:
        return None if self.current is None else ModelRef(self.current.name, self.current.version)

    @property
    def pending_version(self) -> int | None:  # the version whose install a database outage interrupted
        return None if self._pending is None else self._pending.version

    def serving_set(self) -> ServingSet | None:
        """What the next batch is scored by (see the module doc)."""
        if self.serving is not None:
            return self.serving
        ref = self.current_ref
        return None if ref is None else ServingSet.champion(ref)

    def resume_from_database(self) -> ModelArtifact | None:
        """Serve what the database served last: its lifecycle state, else the newest version installed
        (a restart needs no models-topic replay)."""
        state = self.lifecycle.resume()
        if state is not None and (serving := state.serving_set()) is not None:
            self._serve(serving)
            return self.current
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
        self._reading_since_ms = int(time.time() * 1000)
        self._read_upto, self._wipe_checked_at = {}, time.monotonic()
        return consumer

    def close(self) -> None:  # the reader only: the next poll reads the topic anew
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    def shutdown(self) -> None:  # the reader and the session that installs ahead
        self.close()
        self.ahead.close()

    def poll(self, timeout: float = 0.0) -> ModelArtifact | None:
        """Read what has arrived; install and return the newest acceptable version, if any."""
        consumer = self._consumer or self.start()
        candidates: list[tuple[ModelArtifact, int]] = []  # plain records: (artifact, published at)
        for message in consumer.consume(64, timeout):
            if message.error():
                log.warning("models topic: %s", message.error())
                continue
            partition, offset = message.partition(), message.offset()
            if partition is not None and offset is not None:
                self._read_upto[partition] = offset + 1
            if (message.key() or b"") == self.settings.model_name.encode():
                self._seen_own_model = True
            headers = headers_to_dict(message.headers())
            kind = record_kind(message.key(), headers, self.settings.model_name)
            if kind == LIFECYCLE:
                self.lifecycle.on_snapshot(message.value() or b"")
                continue
            if kind is None:
                continue  # another model on the shared topic
            artifact = self._verify(message, headers, kind)
            if artifact is None:
                continue
            if self._published_since_start(message):
                self.ahead.start(artifact)
            if kind == ARTIFACT:
                self.lifecycle.on_artifact(artifact)
            else:
                candidates.append((artifact, message.timestamp()[1]))
        self._warn_if_topic_lost_the_model()
        self._restart_if_topic_was_wiped(consumer)
        if self.ahead.busy():  # decide once the version being installed ahead is ready; the set in force serves
            self._held += candidates
            return None
        candidates, self._held = self._held + candidates, []
        if self.lifecycle.active:  # plain records fold into the lifecycle (champion when newer than all)
            for artifact, published_at in candidates:
                self.lifecycle.on_plain(artifact, published_at)
            candidates = []
        if self._pending is not None:
            candidates.append((self._pending, 0))
        for artifact, _ in sorted(candidates, key=lambda c: c[0].version, reverse=True):
            if self.current is not None and artifact.version <= self.current.version:
                continue  # a pending candidate overtaken meanwhile
            self._pending = artifact  # kept if a database outage interrupts the install (it raises)
            if self._install(artifact):
                self._pending = None
                return artifact
        self._pending = None
        state = self.lifecycle.apply(lambda artifact: self._install(artifact, serve=False))
        if self.lifecycle.reread:
            self.lifecycle.reread = False
            self.close()  # the next poll reads the topic from the beginning (the applied state stays)
        if state is not None and (serving := state.serving_set()) is not None:
            self._serve(serving)
            return self.current
        return None

    def _published_since_start(self, message: Message) -> bool:
        kind, published_at = message.timestamp()
        return kind != TIMESTAMP_NOT_AVAILABLE and published_at > self._reading_since_ms

    def _serve(self, serving: ServingSet) -> None:
        """Make ``serving`` the set in force; ``current`` becomes the artifact its served ref names."""
        self.serving = serving
        version = serving.served_ref.version
        if self.current is None or self.current.version != version:
            self.current = self.backend.load_model(ModelRef(serving.served_ref.name, version))

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
        """Say so, once per reader, when the models topic no longer holds the model being served (a restarted
        embedded broker or a deleted topic): this consumer serves on, a new one would find no model."""
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
        if (version, reason) in self._reported:
            log.debug("model artifact v%s rejected again (%s), already reported", version, reason)
            return
        self._reported.add((version, reason))
        rejection = Rejection(version, reason, message)
        self.rejected.append(rejection)
        log.warning("model artifact v%s rejected (%s): %s; the current model keeps serving",
                    version if version is not None else "?", reason, message,
                    extra=event("model-rejected", model=self.settings.model_name, version=version, reason=reason))
        self.on_reject(rejection)

    def _not_newer(self, artifact: ModelArtifact, message: Message) -> None:
        """Reject a version not newer than the one serving, unless it is that one or the topic's history.

        Every reader reads the topic from the beginning (start, restart, reset), meeting every
        version published so far (the embedded broker never compacts): a record published
        before this reader started is history, and only one published since is a failed swap.
        """
        current = self.current
        if current is None:
            return
        if artifact.version == current.version and artifact.sha256 == current.sha256:
            return  # the serving version, read again
        kind, published_at = message.timestamp()
        if kind != TIMESTAMP_NOT_AVAILABLE and 0 < published_at < self._reading_since_ms:
            log.debug("model v%d on the topic: published before this reader started, superseded by v%d",
                      artifact.version, current.version)
            return
        same = " with other weights than the one" if artifact.version == current.version else ""
        self._reject(artifact.version, "not-newer",
                     f"v{artifact.version} is not newer than v{current.version}{same} serving; publish it under "
                     f"a new version (`streamscore publish-model PATH --version {current.version + 1}`)")

    def _verify(self, message: Message, headers: dict[str, bytes], kind: str) -> ModelArtifact | None:
        """The artifact of an ARTIFACT or PLAIN record of our model (``headers`` and ``kind`` as poll
        decoded them), or None after rejecting it."""
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
        refused = self.signatures.check(artifact, headers) if self.signatures is not None else None
        if refused is not None:
            self._reject(artifact.version, *refused)
            return None
        if kind == PLAIN and not self.lifecycle.active and self.current is not None \
                and artifact.version <= self.current.version:
            self._not_newer(artifact, message)
            return None
        return artifact

    def _install(self, artifact: ModelArtifact, serve: bool = True) -> bool:
        """Install and canary-check ``artifact``; with ``serve`` it becomes the one served alone."""
        self.installs += 1
        prepared = self.ahead.take(artifact)  # installed and canary-checked ahead: the install is a no-op
        try:
            self.backend.install_model(artifact)
            mismatch = None if prepared else canary_mismatch(self.backend, artifact)
            if mismatch is not None:
                self._reject(artifact.version, "canary-failed", mismatch)
                return False
        except BackendError as exc:
            if exc.retriable:
                raise
            self._reject(artifact.version, exc.reason, exc.message)
            return False
        except ArtifactError as exc:  # e.g. version-conflict: this version is installed with other weights
            self._reject(artifact.version, exc.reason, exc.message)
            return False
        if not serve:
            log.info("model %s v%d installed", artifact.name, artifact.version)
            return True
        previous = self.current_ref
        self.current = artifact
        self.serving = None
        log.info("model %s v%d installed and serving (was %s)", artifact.name, artifact.version, previous)
        return True
