"""The kinds of record on the models topic and their keys (issue 12; docs/decisions.md).

Compaction keeps the last record per key, so the lifecycle needs more than one key per model:

* ``<name>`` — a **lifecycle** record: the whole state of the model's versions as JSON
  (:class:`~streamscore.model.lifecycle.Lifecycle`), header ``record-type: lifecycle``. Each one
  is a full snapshot, so the last one per name is all a fresh reader needs.
* ``<name>@v<version>`` — an **artifact** record: the artifact bytes of one version with the usual
  headers (``model-version``, ``sha256``, ``signature``) and ``record-type: artifact``; one key per
  version, so every version a rollback may return to survives compaction.
* ``<name>`` without ``record-type`` — a **plain** artifact record as written before lifecycles
  (and still by ``publish-model --force``): read as "publish this version as champion" when it is
  newer than every known version.

A reader from before lifecycles ignores artifact records (another key) and rejects lifecycle
records with a logged reason (the value is JSON, not an artifact): it keeps serving what it has.
"""

from __future__ import annotations

import hashlib
import re
from typing import NamedTuple

from streamscore.shared.messages import Headers

RECORD_TYPE = "record-type"
ARTIFACT = "artifact"
LIFECYCLE = "lifecycle"
PLAIN = "plain"

_VERSIONED = re.compile(r"^(?P<name>.+)@v(?P<version>[1-9][0-9]*)$")


def artifact_key(name: str, version: int) -> bytes:
    return f"{name}@v{version}".encode()


def versioned_name(name: str) -> bool:
    """True for a name that reads as an artifact key (``mlp@v3``): refused as a model name."""
    return _VERSIONED.match(name) is not None


class RecordKey(NamedTuple):
    """What a models-topic record's key and ``record-type`` header say, whichever model it is of."""

    #: the model's name (an artifact record's key without its ``@v<N>``)
    name: str
    #: ARTIFACT, LIFECYCLE or PLAIN
    kind: str


def parse_record(key: bytes | None, headers: dict[str, bytes]) -> RecordKey:
    """The model name and kind of a record on the models topic, without knowing which model is wanted.

    ARTIFACT needs both the header and a ``<name>@v<N>`` key; a record with header ``lifecycle`` is
    LIFECYCLE under its key; anything else is PLAIN under its whole key (an artifact header on a key
    without ``@v<N>`` included: no reader of a model takes it as an artifact record).
    """
    text = (key or b"").decode("utf-8", "replace")
    kind = headers.get(RECORD_TYPE, b"").decode("latin-1")
    match = _VERSIONED.match(text) if kind == ARTIFACT else None
    if match is not None:
        return RecordKey(match["name"], ARTIFACT)
    return RecordKey(text, LIFECYCLE if kind == LIFECYCLE else PLAIN)


def record_kind(key: bytes | None, headers: dict[str, bytes], name: str) -> str | None:
    """ARTIFACT, LIFECYCLE or PLAIN for a record of model ``name``; None for another model's."""
    record = parse_record(key, headers)
    return record.kind if record.name == name else None


def artifact_headers(role: str) -> Headers:
    """Headers an artifact record carries besides model-version, sha256 and signature."""
    return [(RECORD_TYPE, ARTIFACT.encode()), ("role", role.encode())]


def lifecycle_headers(value: bytes, revision: int, version: int) -> Headers:
    """``model-version`` is the champion's (for tools that show it); ``sha256`` lets readers check the JSON."""
    return [
        (RECORD_TYPE, LIFECYCLE.encode()), ("model-version", str(version).encode()),
        ("sha256", hashlib.sha256(value).hexdigest().encode()), ("lifecycle-revision", str(revision).encode()),
    ]
