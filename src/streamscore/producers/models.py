"""Publish model artifacts to the compacted models topic.

The topic is keyed by model name and compacted: in the end only the last record per key is
kept, and that is the one a fresh consumer starts from. So the last record per key must
always be the newest version. ``publish_new_version`` refuses a version that is not newer
than the newest on the topic; with ``force`` it publishes it and then appends the newest
record again, so compaction can never leave an older version behind (docs/decisions.md).
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Producer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from streamscore.errors import ConfigError
from streamscore.model.artifact import ModelArtifact
from streamscore.model.keys import fingerprint, load_private_key
from streamscore.model.signing import sign
from streamscore.shared.config import Settings
from streamscore.shared.kafka import assign_from_beginning, flush, make_consumer, make_producer
from streamscore.shared.messages import Headers, header_model_version, headers_to_dict, model_headers
from streamscore.shared.model_records import LIFECYCLE, PLAIN, record_kind


@dataclass
class PublishedRecord:
    """A record of the models topic, kept byte for byte so it can be appended again."""

    version: int
    value: bytes
    headers: Headers


@dataclass
class PublishOutcome:
    digest: str
    newest_before: int | None
    reappended: int | None = None
    #: fingerprint of the key that signed it (None: unsigned)
    signed_by: str | None = None


def signing_key(settings: Settings, path: Path | None = None) -> Ed25519PrivateKey | None:
    """The private key to sign with: ``path`` (``--sign-key``), else STREAMSCORE_MODEL_SIGN_KEY_FILE, else none."""
    chosen = path if path is not None else settings.model_sign_key_file
    return load_private_key(chosen) if chosen is not None else None


def signature_headers(payload: bytes, key: Ed25519PrivateKey) -> Headers:
    """``signature`` and ``signature-key`` of the artifact as consumers will parse it from ``payload``."""
    published = ModelArtifact.from_bytes(payload)
    return [("signature", sign(published, key).encode()),
            ("signature-key", fingerprint(key.public_key()).encode())]


def publish_model(settings: Settings, artifact: ModelArtifact, value: bytes | None = None,
                  producer: Producer | None = None, sign_key: Ed25519PrivateKey | None = None, *,
                  key: bytes | None = None, extra_headers: Headers | None = None) -> str:
    """Send one artifact keyed by model name (or ``key``: versioned records of the lifecycle, with their
    ``extra_headers``), signed with ``sign_key`` if given; returns the sha256 of the value.

    Reuse a ``producer`` to publish several versions without a new producer's ~500 ms start.
    """
    payload = value if value is not None else artifact.to_bytes()
    digest = hashlib.sha256(payload).hexdigest()
    headers = model_headers(artifact.version, digest)
    if sign_key is not None:
        headers += signature_headers(payload, sign_key)
    producer = make_producer(settings) if producer is None else producer  # an empty producer is falsy
    producer.produce(settings.models_topic, key=key or artifact.name.encode(), value=payload,
                     headers=headers + (extra_headers or []))
    flush(producer)
    return digest


def newest_on_topic(settings: Settings, name: str, idle_s: float = 1.0) -> PublishedRecord | None:
    """The newest version of ``name`` on the models topic, with the record that must stay its last one.

    ``version`` is the newest version any record of ``name`` names; ``value``/``headers`` are the
    lifecycle snapshot of the highest revision when there is one (what readers apply; its
    model-version header names the champion, which a rollback makes older), else the plain record
    of the newest version. The topic is read whole, until ``idle_s`` without a message: completion
    is decided by silence, not by the high watermark (wrong on the embedded broker).
    """
    consumer = make_consumer(settings, f"{settings.group}.publisher.{uuid.uuid4().hex[:8]}")
    newest: PublishedRecord | None = None
    state: tuple[int, PublishedRecord] | None = None  # (revision, snapshot record)
    top = 0
    try:
        if not assign_from_beginning(consumer, settings.models_topic):
            return None
        while batch := consumer.consume(100, idle_s):
            for message in batch:
                if message.error():
                    continue
                headers = headers_to_dict(message.headers())
                kind = record_kind(message.key(), headers, name)
                version = header_model_version(headers)
                if kind is None or version is None:
                    continue
                top = max(top, version)
                record = PublishedRecord(version, message.value() or b"", list(headers.items()))
                if kind == LIFECYCLE:
                    revision = int(headers.get("lifecycle-revision", b"0") or 0)
                    if state is None or revision >= state[0]:
                        state = (revision, record)
                elif kind == PLAIN and (newest is None or version >= newest.version):
                    newest = record
    finally:
        consumer.close()
    last = state[1] if state is not None else newest
    return None if last is None else PublishedRecord(top, last.value, last.headers)


def publish_new_version(settings: Settings, artifact: ModelArtifact, *, force: bool = False,
                        sign_key: Ed25519PrivateKey | None = None) -> PublishOutcome:
    """Publish ``artifact`` if it is newer than the newest on the topic (or ``force``); see the module docstring."""
    newest = newest_on_topic(settings, artifact.name)
    older = newest if newest is not None and artifact.version <= newest.version else None
    if older is not None and not force:
        raise ConfigError(
            f"{artifact.name} v{artifact.version} is not newer than v{older.version}, the newest on "
            f"{settings.models_topic}: consumers would ignore it. To roll back, publish the old weights "
            f"under a new version (--version {older.version + 1}); --force publishes it anyway "
            "(it is not served, and the newest record is appended again after it)",
            reason="version-not-newer",
        )
    producer = make_producer(settings)
    digest = publish_model(settings, artifact, producer=producer, sign_key=sign_key)
    outcome = PublishOutcome(digest, newest.version if newest is not None else None,
                             signed_by=fingerprint(sign_key.public_key()) if sign_key is not None else None)
    if older is not None:
        producer.produce(settings.models_topic, key=artifact.name.encode(), value=older.value,
                         headers=older.headers)
        flush(producer)
        outcome.reappended = older.version
    return outcome
