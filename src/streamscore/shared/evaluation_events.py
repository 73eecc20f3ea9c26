"""Records on the evaluation topic that are not predictions: they carry a ``kind`` field.

A consumer that rejects a model artifact publishes one ``model-rejected`` record::

    {"kind": "model-rejected", "model_name": "mlp", "model_version": 7 | null,
     "reason": "bad-signature", "message": "...", "at": <epoch ms>,
     "backend": "duckdb", "group": "streamscore-scorers"}

with the header ``kind: model-rejected`` (and ``model-version`` when known). Its key,
``<US>model-rejected:<model name>`` (US = the ASCII unit separator, 0x1f), can never be an
image id (the images topic refuses keys with control characters), and keeps one model's
events in order on one partition. Readers of the topic tell the two apart with
:func:`record_kind` (by header, else by the JSON ``kind`` field): a prediction has none.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streamscore.errors import MessageError
from streamscore.shared.messages import Headers, ReceivedHeaders, headers_to_dict

MODEL_REJECTED = "model-rejected"
KEY_PREFIX = "\x1f"


@dataclass(frozen=True)
class ModelRejected:
    model_name: str
    model_version: int | None
    reason: str
    message: str
    at: int
    backend: str = ""
    group: str = ""

    def key(self) -> bytes:
        return f"{KEY_PREFIX}{MODEL_REJECTED}:{self.model_name}".encode()

    def to_json(self) -> bytes:
        return json.dumps({"kind": MODEL_REJECTED, "model_name": self.model_name,
                           "model_version": self.model_version, "reason": self.reason,
                           "message": self.message, "at": self.at, "backend": self.backend,
                           "group": self.group}).encode()

    def headers(self) -> Headers:
        headers: Headers = [("kind", MODEL_REJECTED.encode())]
        if self.model_version is not None:
            headers.append(("model-version", str(self.model_version).encode()))
        return headers

    @classmethod
    def from_json(cls, value: bytes) -> ModelRejected:
        try:
            body: Mapping[str, Any] = json.loads(value)
            if body.get("kind") != MODEL_REJECTED:
                raise ValueError(f"kind is {body.get('kind')!r}")
            version = body.get("model_version")
            return cls(str(body["model_name"]), None if version is None else int(version), str(body["reason"]),
                       str(body.get("message", "")), int(body["at"]), str(body.get("backend", "")),
                       str(body.get("group", "")))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise MessageError(f"not a model-rejected record: {exc}", reason="bad-event") from None


def record_kind(headers: ReceivedHeaders, value: bytes | None) -> str | None:
    """The ``kind`` of an evaluation-topic record; None for a prediction.

    The header decides when present (no JSON parsing on the hot path); a record written
    without headers is recognised by a top-level ``"kind"`` field.
    """
    kind = headers_to_dict(headers).get("kind")
    if kind:
        return kind.decode("utf-8", "replace")
    if value and b'"kind"' in value:
        try:
            body = json.loads(value)
        except ValueError:
            return None
        if isinstance(body, dict) and body.get("kind") is not None:
            return str(body["kind"])
    return None
