"""Wire formats: exact bytes out, reason codes for every kind of bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from streamscore.errors import MessageError
from streamscore.shared.messages import (
    IMAGE_CONTENT_TYPE,
    Prediction,
    decode_image,
    dlq_headers,
    encode_image,
    encode_predictions,
    model_headers,
)

PIXELS = bytes(range(256)) * 3 + bytes(16)
GOOD_HEADERS = [("content-type", IMAGE_CONTENT_TYPE.encode()), ("produced-at", b"1700000000000"), ("label", b"7")]


def test_encode_image_exact_bytes() -> None:
    key, value, headers = encode_image("t10k-00042", PIXELS, 7, produced_at=1700000000000)
    assert key == b"t10k-00042"
    assert value == PIXELS
    assert headers == GOOD_HEADERS


def test_encode_without_label_sends_no_label_header() -> None:
    _, _, headers = encode_image("x", PIXELS, None, produced_at=5)
    assert headers == [("content-type", IMAGE_CONTENT_TYPE.encode()), ("produced-at", b"5")]


def test_decode_round_trip() -> None:
    image = decode_image(b"t10k-00042", PIXELS, GOOD_HEADERS)
    assert (image.image_id, image.pixels, image.label, image.produced_at) == ("t10k-00042", PIXELS, 7, 1700000000000)


def test_decode_accepts_missing_optional_headers() -> None:
    image = decode_image(b"id-1", PIXELS, None)
    assert (image.label, image.produced_at) == (None, 0)


@pytest.mark.parametrize(
    ("key", "value", "headers", "reason"),
    [
        (b"k", PIXELS[:783], GOOD_HEADERS, "bad-length"),
        (b"k", PIXELS + b"\x00", GOOD_HEADERS, "bad-length"),
        (b"k", b"", GOOD_HEADERS, "bad-length"),
        (b"k", None, GOOD_HEADERS, "tombstone"),
        (None, PIXELS, GOOD_HEADERS, "missing-key"),
        (b"\xff\xfe", PIXELS, GOOD_HEADERS, "bad-key"),
        (b"a" * 129, PIXELS, GOOD_HEADERS, "bad-key"),
        (b"line\nbreak", PIXELS, GOOD_HEADERS, "bad-key"),
        (b"k", PIXELS, [("content-type", b"image/png")], "bad-content-type"),
        (b"k", PIXELS, [("label", b"12")], "bad-label"),
        (b"k", PIXELS, [("label", b"x")], "bad-label"),
        (b"k", PIXELS, [("label", b"-1")], "bad-label"),
        (b"k", PIXELS, [("produced-at", b"yesterday")], "bad-header"),
        (b"k", PIXELS, [("produced-at", b"\xff")], "bad-header"),
    ],
)
def test_decode_rejections_carry_reason(key: bytes | None, value: bytes | None,
                                        headers: list[tuple[str, bytes]], reason: str) -> None:
    with pytest.raises(MessageError) as caught:
        decode_image(key, value, headers)
    assert caught.value.reason == reason


def test_hostile_keys_are_just_ids() -> None:
    key = b"x'; DROP TABLE images; --"
    assert decode_image(key, PIXELS, None).image_id == key.decode()


def test_prediction_json_fields_and_round_trip() -> None:
    prediction = Prediction("t10k-1", 3, tuple([0.05] * 9 + [0.55]), 3, "mlp", 2, "champion", "duckdb", 10, 25)
    body = json.loads(prediction.to_json())
    assert set(body) == {"image_id", "predicted", "probabilities", "label", "model_name", "model_version",
                         "role", "backend", "produced_at", "scored_at"}
    assert Prediction.from_json(prediction.to_json()) == prediction
    assert prediction.headers() == [("model-version", b"2")]


def test_prediction_escapes_strange_ids() -> None:
    prediction = Prediction('a"b\\c', 0, (1.0,) + (0.0,) * 9, None, "mlp", 1, "champion", "duckdb", 0, 1)
    assert json.loads(prediction.to_json())["image_id"] == 'a"b\\c'


@pytest.mark.parametrize("value", [b"not json", b"{}", b'{"image_id": "x"}', b"[1,2]"])
def test_prediction_from_garbage(value: bytes) -> None:
    with pytest.raises(MessageError) as caught:
        Prediction.from_json(value)
    assert caught.value.reason == "bad-prediction"


def test_dlq_headers_exact() -> None:
    headers = dlq_headers(reason="bad-length", message="value is 783 bytes", stage="decode",
                          topic="mnist.images", partition=3, offset=42)
    assert headers == [
        ("error.reason", b"bad-length"), ("error.message", b"value is 783 bytes"), ("error.stage", b"decode"),
        ("source.topic", b"mnist.images"), ("source.partition", b"3"), ("source.offset", b"42"),
    ]


def test_model_headers_exact() -> None:
    assert model_headers(3, "ab12", "sig") == [("model-version", b"3"), ("sha256", b"ab12"), ("signature", b"sig")]
    assert model_headers(1, "ab12") == [("model-version", b"1"), ("sha256", b"ab12")]


@pytest.mark.parametrize("members", [None, (2, 3)])
def test_batch_encoding_is_byte_for_byte_the_prediction_json(members: tuple[int, ...] | None) -> None:
    rng = np.random.default_rng(7)
    ids = ["t10k-00001", 'say "hi"', "back\\slash", "ümlaut", "tab\there", "", "x" * 128]
    probabilities = rng.random((len(ids), 10), dtype=np.float32)
    probabilities[0] = [1e-30, 0.5, 1.0, 0.0, 3.3e-7, 0.1, 0.2, 0.3, 0.4, 0.123456789]
    labels = [3, -1, 0, 9, -1, 5, 1]
    produced = [1_795_975_790_434 + i for i in range(len(ids))]
    scored = [p + 17 for p in produced]
    predicted = probabilities.argmax(axis=1).tolist()
    values = encode_predictions(ids, predicted, probabilities.tolist(), labels, produced, scored, model_name="mlp",
                                model_version=4, role="ensemble" if members else "champion", backend="duckdb",
                                members=members)
    for i, value in enumerate(values):
        expected = Prediction(ids[i], predicted[i], tuple(probabilities[i].tolist()),
                              None if labels[i] < 0 else labels[i], "mlp", 4, "ensemble" if members else "champion",
                              "duckdb", produced[i], scored[i], members).to_json()
        assert value == expected
        assert Prediction.from_json(value).image_id == ids[i]
