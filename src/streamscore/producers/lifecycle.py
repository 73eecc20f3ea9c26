"""Lifecycle commands on the models topic: publish with a role, promote, withdraw, rollback.

Each command reads the topic whole (:func:`read_topic`: the newest lifecycle snapshot, with plain
records of older publishers folded in), applies one transition of
:class:`~streamscore.model.lifecycle.Lifecycle` and appends the new snapshot under the model name.
A publish appends the artifact record (``<name>@v<version>``) first, so a reader that sees the
snapshot can find every version it names. Plain records a snapshot relies on are copied once
under their versioned key before the first snapshot, because that snapshot replaces them under
the model name in compaction (docs/decisions.md).

Two commands at the same moment from two places both start from the same snapshot, and the one
whose revision is higher (it took the clock later) wins on every reader alike: the other's change
is lost, never half-applied. Run lifecycle commands from one place at a time.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import Consumer, Message, Producer, TopicPartition
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from streamscore.errors import ConfigError, KafkaError, LifecycleError
from streamscore.model.artifact import ModelArtifact
from streamscore.model.keys import fingerprint
from streamscore.model.lifecycle import Lifecycle, LifecycleFold
from streamscore.producers.models import PublishedRecord, publish_model
from streamscore.shared.config import Settings
from streamscore.shared.kafka import assign_from_beginning, flush, make_consumer, make_producer
from streamscore.shared.messages import header_model_version, headers_to_dict
from streamscore.shared.model_records import (
    ARTIFACT,
    LIFECYCLE,
    PLAIN,
    artifact_headers,
    artifact_key,
    lifecycle_headers,
    record_kind,
    versioned_name,
)

log = logging.getLogger(__name__)


@dataclass
class TopicView:
    """What the models topic holds for one model name."""

    lifecycle: Lifecycle
    #: versions with an artifact record under their own key
    artifacts: set[int] = field(default_factory=set)
    #: plain records (key = name, no record-type) by version
    plain: dict[int, PublishedRecord] = field(default_factory=dict)


@dataclass(frozen=True)
class Clients:
    """Where the Kafka clients come from (tests pass the fakes' factories) and how long "read whole" waits."""

    consumer_factory: Callable[..., Consumer] = make_consumer
    producer_factory: Callable[..., Producer] = make_producer
    idle_s: float = 0.25


KAFKA = Clients()
#: how long reading the models topic to its end may take before it is given up
READ_WHOLE_LIMIT_S = 30.0


def read_topic(settings: Settings, name: str, clients: Clients = KAFKA) -> TopicView:
    """Read the models topic whole and fold the records of ``name``.

    "Whole" = at least up to the high watermark the broker reports at the start (the embedded
    broker's is too low when its last batch held several records, never too high), then until
    ``idle_s`` without a message for the rest of that batch. A state folded from part of the topic
    would make the next snapshot forget versions, so an unreachable end raises instead.
    """
    consumer = clients.consumer_factory(settings, f"{settings.group}.lifecycle.{uuid.uuid4().hex[:8]}")
    fold = LifecycleFold(name)
    view = TopicView(fold.state)
    try:
        partitions = assign_from_beginning(consumer, settings.models_topic)
        if not partitions:
            return view
        ends = {p: consumer.get_watermark_offsets(TopicPartition(settings.models_topic, p), timeout=10)[1]
                for p in range(partitions)}
        read = dict.fromkeys(ends, 0)
        deadline = time.monotonic() + READ_WHOLE_LIMIT_S
        while True:
            batch = consumer.consume(100, clients.idle_s)
            for message in batch:
                if not message.error():
                    read[message.partition() or 0] = (message.offset() or 0) + 1
                    _fold_record(message, name, fold, view)
            if not batch and all(read[p] >= end for p, end in ends.items()):
                break
            if time.monotonic() > deadline:
                raise KafkaError(f"could not read {settings.models_topic} to its end within {READ_WHOLE_LIMIT_S:.0f}s "
                                 f"(read up to {read}, end {ends}); is Kafka up?", reason="kafka-unreachable")
    finally:
        consumer.close()
    view.lifecycle = fold.state
    return view


def _fold_record(message: Message, name: str, fold: LifecycleFold, view: TopicView) -> None:
    headers = headers_to_dict(message.headers())
    kind = record_kind(message.key(), headers, name)
    version = header_model_version(headers)
    if kind == LIFECYCLE:
        try:
            fold.snapshot(Lifecycle.from_json(message.value() or b""))
        except LifecycleError:
            log.warning("%s: a lifecycle record of %s that does not parse was ignored", message.topic(), name)
    elif kind == ARTIFACT and version is not None:
        view.artifacts.add(version)
    elif kind == PLAIN and version is not None:
        value = message.value() or b""
        view.plain[version] = PublishedRecord(version, value, list(headers.items()))
        fold.plain(version, hashlib.sha256(value).hexdigest(), message.timestamp()[1])


def write_snapshot(settings: Settings, view: TopicView, state: Lifecycle, producer: Producer) -> None:
    """Append ``state`` under the model name (after copying plain records it needs under versioned keys)."""
    for version in state.needed_versions():
        record = view.plain.get(version)
        if version not in view.artifacts and record is not None:
            headers = [(k, v) for k, v in record.headers if k != "record-type"]
            entry = state.entry(version)
            producer.produce(settings.models_topic, key=artifact_key(state.name, version), value=record.value,
                             headers=headers + artifact_headers(entry.role if entry else "champion"))
            view.artifacts.add(version)
    value = state.to_json()
    producer.produce(settings.models_topic, key=state.name.encode(), value=value,
                     headers=lifecycle_headers(value, state.revision, state.champion or state.newest))
    flush(producer)


def publish_with_role(settings: Settings, artifact: ModelArtifact, role: str, key_id: str = "",
                      clients: Clients = KAFKA, sign_key: Ed25519PrivateKey | None = None) -> Lifecycle:
    """Publish ``artifact`` as ``role`` (champion, shadow, ensemble), signed with ``sign_key`` if given;
    returns the new state (``key_id``: the signer shown by `models list`, by default the key's fingerprint)."""
    if sign_key is not None and not key_id:
        key_id = fingerprint(sign_key.public_key())
    if versioned_name(artifact.name):
        raise ConfigError(f"model name {artifact.name!r} ends like a versioned record key (@vN); rename the model")
    view = read_topic(settings, artifact.name, clients)
    try:
        state = view.lifecycle.publish(artifact.version, role, sha256=artifact.sha256, key_id=key_id)
    except LifecycleError as exc:
        if exc.reason != "version-not-newer":
            raise
        raise LifecycleError(f"{exc.message}; consumers would ignore it. --force publishes it anyway as a plain "
                             "record (not served; the newest is appended again after it)",
                             reason=exc.reason) from None
    producer = clients.producer_factory(settings)
    publish_model(settings, artifact, producer=producer, sign_key=sign_key,
                  key=artifact_key(artifact.name, artifact.version), extra_headers=artifact_headers(role))
    view.artifacts.add(artifact.version)
    write_snapshot(settings, view, state, producer)
    return state


def run_command(settings: Settings, name: str, command: Callable[[Lifecycle], Lifecycle],
                clients: Clients = KAFKA) -> Lifecycle:
    """Apply ``command`` (e.g. ``lambda s: s.promote(3)``) to the topic's state and append the result."""
    view = read_topic(settings, name, clients)
    if not view.lifecycle.versions:
        raise LifecycleError(f"no versions of model {name!r} on {settings.models_topic}: publish one with "
                             "`streamscore publish-model PATH`", reason="unknown-model")
    state = command(view.lifecycle)
    write_snapshot(settings, view, state, clients.producer_factory(settings))
    return state


def rollback_action(settings: Settings, clients: Clients = KAFKA) -> Callable[[str, int, str], bool]:
    """For :class:`~streamscore.consumers.auto_rollback.AutoRollback`: roll ``name`` back from ``version``
    with ``reason``, only while ``version`` is still its champion; True when a rollback was published."""

    def act(name: str, version: int, reason: str) -> bool:
        view = read_topic(settings, name, clients)
        state = view.lifecycle
        if state.champion != version:
            log.warning("%s — not rolled back: the champion of %s is %s now", reason, name,
                        f"v{state.champion}" if state.champion is not None else "none")
            return False
        try:
            rolled = state.rollback(reason)
        except LifecycleError as exc:
            log.warning("%s — cannot roll back: %s", reason, exc.message)
            return False
        write_snapshot(settings, view, rolled, clients.producer_factory(settings))
        return True

    return act
