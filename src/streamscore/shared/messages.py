"""Wire formats of the four topics (see DESIGN.md, "Topics and wire formats").

Decoding never raises anything but :class:`MessageError`, whose ``reason`` is the
short code that goes into the DLQ ``error.reason`` header.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Message

from streamscore.errors import MessageError

IMAGE_BYTES = 784
IMAGE_CONTENT_TYPE = "application/x-mnist-u8"
MAX_KEY_BYTES = 128

#: headers as confluent-kafka takes them (we always send bytes values)
Headers = list[tuple[str, str | bytes | None]]
#: headers as confluent-kafka returns them
ReceivedHeaders = Sequence[tuple[str, str | bytes | None]] | Mapping[str, str | bytes | None] | None


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def headers_to_dict(headers: ReceivedHeaders) -> dict[str, bytes]:
    """Kafka headers as a dict of bytes (the last value wins for a repeated name; None becomes b'')."""
    pairs = headers.items() if isinstance(headers, Mapping) else (headers or [])
    return {name: value.encode() if isinstance(value, str) else (value or b"") for name, value in pairs}


def position(message: Message) -> tuple[str, int, int]:
    """(topic, partition, offset) of a consumed message (always set for messages without error)."""
    topic, partition, offset = message.topic(), message.partition(), message.offset()
    if topic is None or partition is None or offset is None:
        raise MessageError("message has no topic/partition/offset", reason="no-position")
    return topic, partition, offset


@dataclass(frozen=True, slots=True)
class ImageMessage:
    """One decoded message of the images topic."""

    image_id: str
    pixels: bytes
    label: int | None
    produced_at: int


def encode_image(
    image_id: str, pixels: bytes, label: int | None, produced_at: int | None = None
) -> tuple[bytes, bytes, Headers]:
    """Key, value and headers of an images-topic message."""
    if len(pixels) != IMAGE_BYTES:
        raise MessageError(f"an image is {IMAGE_BYTES} bytes, got {len(pixels)}", reason="bad-length")
    headers: Headers = [
        ("content-type", IMAGE_CONTENT_TYPE.encode()),
        ("produced-at", str(now_ms() if produced_at is None else produced_at).encode()),
    ]
    if label is not None:
        headers.append(("label", str(label).encode()))
    return image_id.encode(), pixels, headers


_CONTENT_TYPE_BYTES = IMAGE_CONTENT_TYPE.encode()


def _image_headers(headers: ReceivedHeaders) -> tuple[bytes | None, bytes | None, bytes | None]:
    """content-type, label and produced-at (the last value wins, None becomes b'').

    One pass over the list, no dict: this runs once per consumed image (hot path).
    """
    content_type = label = produced_at = None
    pairs = headers.items() if isinstance(headers, Mapping) else (headers or ())
    for name, value in pairs:
        if name == "produced-at":
            produced_at = value.encode() if isinstance(value, str) else (value or b"")
        elif name == "label":
            label = value.encode() if isinstance(value, str) else (value or b"")
        elif name == "content-type":
            content_type = value.encode() if isinstance(value, str) else (value or b"")
    return content_type, label, produced_at


def decode_image(key: bytes | None, value: bytes | None, headers: ReceivedHeaders) -> ImageMessage:
    """Validate and decode an images-topic message; raise MessageError with a DLQ reason code."""
    if value is None:
        raise MessageError("tombstone (null value) on the images topic", reason="tombstone")
    if len(value) != IMAGE_BYTES:
        raise MessageError(
            f"value is {len(value)} bytes; an image is exactly {IMAGE_BYTES}", reason="bad-length"
        )
    if not key:
        raise MessageError("message has no key; the key is the image id", reason="missing-key")
    if len(key) > MAX_KEY_BYTES:
        raise MessageError(f"key is {len(key)} bytes; at most {MAX_KEY_BYTES}", reason="bad-key")
    try:
        image_id = key.decode("utf-8")
    except UnicodeDecodeError:
        raise MessageError("key is not valid UTF-8", reason="bad-key") from None
    if not image_id.isprintable():
        raise MessageError("key contains control characters", reason="bad-key")
    content_type, raw_label, raw_ts = _image_headers(headers)
    if content_type is not None and content_type != _CONTENT_TYPE_BYTES:
        raise MessageError(
            f"unknown content-type {content_type[:64].decode('latin-1')!r}; "
            f"expected {IMAGE_CONTENT_TYPE}",
            reason="bad-content-type",
        )
    label: int | None = None
    if raw_label is not None and raw_label != b"":
        if len(raw_label) != 1 or not b"0" <= raw_label <= b"9":
            raise MessageError(
                f"label header {raw_label[:16]!r} is not one digit 0-9", reason="bad-label"
            )
        label = raw_label[0] - 48
    produced_at = 0
    if raw_ts:
        try:
            produced_at = int(raw_ts.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            raise MessageError(
                f"produced-at header {raw_ts[:32]!r} is not epoch milliseconds",
                reason="bad-header",
            ) from None
    return ImageMessage(image_id, value, label, produced_at)


@dataclass(frozen=True, slots=True)
class Prediction:
    """One prediction on the evaluation topic: one image scored by one model version."""

    image_id: str
    predicted: int
    probabilities: tuple[float, ...]
    label: int | None
    model_name: str
    model_version: int
    role: str
    backend: str
    produced_at: int
    scored_at: int
    #: the versions an ensemble's served answer averages (role "ensemble" only)
    members: tuple[int, ...] | None = None

    def to_json(self) -> bytes:
        """Compact JSON; written by hand because it runs once per scored image (hot path)."""
        probabilities = ",".join(["%.7g" % p for p in self.probabilities])  # noqa: UP031 - fastest
        label = "null" if self.label is None else str(int(self.label))
        members = "" if self.members is None else f',"members":[{",".join(str(int(m)) for m in self.members)}]'
        return (
            f'{{"image_id":{json.dumps(self.image_id)},"predicted":{int(self.predicted)},'
            f'"probabilities":[{probabilities}],"label":{label},"model_name":{json.dumps(self.model_name)},'
            f'"model_version":{int(self.model_version)},"role":{json.dumps(self.role)},'
            f'"backend":{json.dumps(self.backend)},"produced_at":{int(self.produced_at)},'
            f'"scored_at":{int(self.scored_at)}{members}}}'
        ).encode()

    @classmethod
    def from_json(cls, value: bytes) -> Prediction:
        try:
            body: Mapping[str, Any] = json.loads(value)
            return cls(
                image_id=str(body["image_id"]),
                predicted=int(body["predicted"]),
                probabilities=tuple(float(p) for p in body["probabilities"]),
                label=None if body.get("label") is None else int(body["label"]),
                model_name=str(body["model_name"]),
                model_version=int(body["model_version"]),
                role=str(body.get("role", "champion")),
                backend=str(body.get("backend", "")),
                produced_at=int(body.get("produced_at") or 0),
                scored_at=int(body["scored_at"]),
                members=None if body.get("members") is None else tuple(int(m) for m in body["members"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise MessageError(f"not a prediction: {exc}", reason="bad-prediction") from None

    def headers(self) -> Headers:
        return [("model-version", str(self.model_version).encode())]


#: printable ASCII without '"' and '\\': written as a JSON string without escaping
_PLAIN_JSON_STRING = re.compile(r"[ !#-\[\]-~]*")
#: one prediction's JSON with the per-batch parts (model, role, backend; members) as %s
_PREDICTION_ROW = (b'{"image_id":%s,"predicted":%d,"probabilities":[' + b",".join([b"%.7g"] * 10)
                   + b'],"label":%s%s,"produced_at":%d,"scored_at":%d%s}')


def json_string(text: str) -> bytes:
    """``text`` as a JSON string literal, as ``json.dumps`` writes it (a fast path for plain ASCII)."""
    return b'"%s"' % text.encode() if _PLAIN_JSON_STRING.fullmatch(text) else json.dumps(text).encode()


def encode_predictions(image_ids: Sequence[str], predicted: Sequence[int], probabilities: Sequence[Sequence[float]],
                       labels: Sequence[int], produced_at: Sequence[int], scored_at: Sequence[int], *,
                       model_name: str, model_version: int, role: str, backend: str,
                       members: Sequence[int] | None = None) -> list[bytes]:
    """The JSON values of one scored batch, byte for byte what :meth:`Prediction.to_json` writes.

    The hot path of publishing: the parts every record of the batch shares are encoded once and
    each record is one %-format, about half the cost of a :class:`Prediction` per image. A label
    below 0 means none (``null``).
    """
    middle = b',"model_name":%s,"model_version":%d,"role":%s,"backend":%s' % (
        json_string(model_name), model_version, json_string(role), json_string(backend))
    tail = b"" if members is None else b',"members":[%s]' % b",".join(b"%d" % m for m in members)
    return [
        _PREDICTION_ROW % (json_string(image_id), digit, *probs, b"null" if label < 0 else b"%d" % label, middle,
                           made, scored, tail)
        for image_id, digit, probs, label, made, scored in zip(
            image_ids, predicted, probabilities, labels, produced_at, scored_at, strict=True)
    ]


def dlq_headers(
    *, reason: str, message: str, stage: str, topic: str, partition: int, offset: int
) -> Headers:
    """Headers that explain why a message was dead-lettered and where it came from."""
    return [
        ("error.reason", reason.encode()),
        ("error.message", message[:1000].encode("utf-8", "replace")),
        ("error.stage", stage.encode()),
        ("source.topic", topic.encode()),
        ("source.partition", str(partition).encode()),
        ("source.offset", str(offset).encode()),
    ]


def header_model_version(headers: dict[str, bytes]) -> int | None:
    """The ``model-version`` header of a models-topic record (decoded headers), or None when unreadable."""
    try:
        return int(headers.get("model-version", b"").decode())
    except ValueError:
        return None


def model_headers(version: int, sha256: str, signature: str | None = None) -> Headers:
    headers: Headers = [("model-version", str(version).encode()), ("sha256", sha256.encode())]
    if signature:
        headers.append(("signature", signature.encode()))
    return headers
