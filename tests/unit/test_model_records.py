"""Keys and record types of the models topic, read with and without the model's name."""

from __future__ import annotations

from streamscore.shared.model_records import (
    ARTIFACT,
    LIFECYCLE,
    PLAIN,
    RECORD_TYPE,
    RecordKey,
    artifact_key,
    parse_record,
    record_kind,
)


def test_parse_record_names_the_model_of_every_kind() -> None:
    assert parse_record(artifact_key("mlp", 3), {RECORD_TYPE: b"artifact"}) == RecordKey("mlp", ARTIFACT)
    assert parse_record(b"mlp", {RECORD_TYPE: b"lifecycle"}) == RecordKey("mlp", LIFECYCLE)
    assert parse_record(b"mlp", {}) == RecordKey("mlp", PLAIN)
    # an artifact key without its header, or the header on a key without @v<N>: plain under the whole key
    assert parse_record(b"mlp@v3", {}) == RecordKey("mlp@v3", PLAIN)
    assert parse_record(b"mlp@vx", {RECORD_TYPE: b"artifact"}) == RecordKey("mlp@vx", PLAIN)
    assert parse_record(None, {}) == RecordKey("", PLAIN)


def test_record_kind_is_the_parse_for_one_model() -> None:
    artifact = {RECORD_TYPE: b"artifact"}
    assert record_kind(b"mlp@v3", artifact, "mlp") == ARTIFACT
    assert record_kind(b"mlp@v3", artifact, "cnn") is None
    assert record_kind(b"mlp", {RECORD_TYPE: b"lifecycle"}, "mlp") == LIFECYCLE
    assert record_kind(b"mlp", artifact, "mlp") == PLAIN  # as before: the plain key is never an artifact record
    assert record_kind(b"mlp@v3", {}, "mlp") is None
