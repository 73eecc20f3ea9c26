"""Producer → embedded broker → Scorer (DuckDB, in-DB scoring) → evaluation topic, with a model swap.

Completion is decided by counting ids, never by the broker's high watermark.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import numpy as np
import pytest

from streamscore.backends import open_backend
from streamscore.consumers.prediction_reader import read_predictions
from streamscore.consumers.scorer import Scorer
from streamscore.model.keys import generate_key_files, load_private_key
from streamscore.models import bundled_model
from streamscore.producers.images import produce_images
from streamscore.producers.models import publish_model
from streamscore.shared.config import Settings
from streamscore.shared.kafka import assign_from_beginning, ensure_topics, flush, make_consumer, make_producer
from streamscore.shared.messages import headers_to_dict
from streamscore.shared.mnist import MnistSplit
from support.drill import wait_until

pytestmark = pytest.mark.slow

#: (key, value, headers, expected error.reason)
MALFORMED = [
    (b"bad-short", bytes(783), [], "bad-length"),
    (b"bad-long", bytes(785), [], "bad-length"),
    (b"bad-empty", b"", [], "bad-length"),
    (b"bad-tombstone", None, [], "tombstone"),
    (b"\xff\xfe\xfd", bytes(784), [], "bad-key"),
    (b"bad-type", bytes(784), [("content-type", b"text/plain")], "bad-content-type"),
    (b"bad-label", bytes(784), [("label", b"10")], "bad-label"),
    (b"bad-ts", bytes(784), [("produced-at", b"soon")], "bad-header"),
]


@contextmanager
def running(scorer: Scorer) -> Iterator[list[BaseException]]:
    errors: list[BaseException] = []

    def target() -> None:
        try:
            scorer.run()
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    try:
        yield errors
    finally:
        scorer.stop.set()
        thread.join(30)


Received = list[tuple[bytes | None, dict[str, bytes]]]


def read_topic(settings: Settings, topic: str, expect: int, timeout: float = 30) -> Received:
    consumer = make_consumer(settings, f"{settings.group}.reader")
    assign_from_beginning(consumer, topic)
    found: Received = []
    deadline = time.monotonic() + timeout
    while len(found) < expect and time.monotonic() < deadline:
        for message in consumer.consume(100, 0.2):
            if not message.error():
                found.append((message.key(), headers_to_dict(message.headers())))
    time.sleep(0.5)  # anything beyond the expected count would be a duplicate: look for it
    found += [(m.key(), headers_to_dict(m.headers())) for m in consumer.consume(100, 0.5) if not m.error()]
    consumer.close()
    return found


def tampered(settings: Settings) -> None:
    """A v3 artifact whose sha256 header does not match its bytes: must be rejected."""
    artifact = bundled_model(2).with_version(3)
    producer = make_producer(settings)
    producer.produce(settings.models_topic, key=b"mlp", value=artifact.to_bytes(),
                     headers=[("model-version", b"3"), ("sha256", b"0" * 64)])
    flush(producer)


def test_stream_swap_and_dead_letters(make_settings: Callable[..., Settings], test_split: MnistSplit) -> None:
    settings = make_settings(batch_size=200)
    ensure_topics(settings)
    v1, v2 = bundled_model(1), bundled_model(2)
    publish_model(settings, v1)
    scorer = Scorer(settings, open_backend(settings.backend_url))
    with running(scorer) as errors:
        assert scorer.ready.wait(30), "consumer did not join its group"
        produce_images(settings, test_split, limit=1000)
        producer = make_producer(settings)
        for key, value, headers, _ in MALFORMED:
            producer.produce(settings.images_topic, key=key, value=value, headers=headers)
        flush(producer)
        wait_until(lambda: scorer.stats.scored >= 1000 and scorer.stats.dead_lettered >= len(MALFORMED),
                   60, "the first 1,000 images")
        tampered(settings)
        publish_model(settings, v2)
        wait_until(lambda: scorer.stats.model_version == 2, 30, "the switch to v2")
        second = MnistSplit("test", test_split.images[1000:2000], test_split.labels[1000:2000])
        produce_images(settings, _renumbered(second, 1000), limit=1000)
        wait_until(lambda: scorer.stats.scored >= 2000, 60, "the second 1,000 images")
    assert not errors
    assert [r.reason for r in scorer.watcher.rejected] == ["bad-digest"]

    db = duckdb.connect(settings.backend_url.removeprefix("duckdb:///"), read_only=True)
    rows = db.execute("SELECT image_id, model_version, predicted, batch_id FROM predictions").fetchall()
    mixed = db.execute("SELECT count(*) FROM (SELECT batch_id FROM predictions GROUP BY batch_id "
                       "HAVING count(DISTINCT model_version) > 1)").fetchall()[0][0]
    bad_in_db = db.execute("SELECT count(*) FROM images WHERE image_id LIKE 'bad-%'").fetchall()[0][0]
    db.close()
    ids = [r[0] for r in rows]
    assert len(ids) == len(set(ids)) == 2000, "every good image exactly once in the DB predictions"
    assert set(ids) == {test_split.image_id(i) for i in range(2000)}
    assert mixed == 0, "a batch mixed model versions"
    assert bad_in_db == 0
    version_of = {r[0]: r[1] for r in rows}
    assert {version_of[test_split.image_id(i)] for i in range(1000)} == {1}
    assert {version_of[test_split.image_id(i)] for i in range(1000, 2000)} == {2}

    dead = read_topic(settings, settings.dlq_topic, len(MALFORMED))
    assert sorted((k, h["error.reason"].decode()) for k, h in dead) == sorted(
        (k, reason) for k, _, _, reason in MALFORMED
    ), "each malformed message exactly once in the DLQ with its reason"
    assert all(h["error.stage"] == b"decode" and h["source.topic"] == settings.images_topic.encode() for _, h in dead)

    evaluation = read_predictions(settings, expect=2000)
    by_version = {r.version: r for r in evaluation.versions()}
    for version, model, rows_ in ((1, v1, slice(0, 1000)), (2, v2, slice(1000, 2000))):
        reference = model.forward(test_split.images[rows_]).argmax(1)
        expected_correct = int((reference == test_split.labels[rows_]).sum())
        assert by_version[version].correct == expected_correct
        assert by_version[version].labelled == 1000
    assert evaluation.image_ids() == set(ids)


def _renumbered(split: MnistSplit, start: int) -> MnistSplit:
    """A split whose image ids continue at ``start`` (t10k-01000 …)."""

    class Offset(MnistSplit):
        def image_id(self, index: int) -> str:
            return super().image_id(index + start)

    return Offset(split.split, split.images, split.labels)


def test_consumer_without_model_waits_and_keeps_images(make_settings: Callable[..., Settings],
                                                       test_split: MnistSplit) -> None:
    settings = make_settings(batch_size=100)
    ensure_topics(settings)
    produce_images(settings, test_split, limit=300)
    scorer = Scorer(settings, open_backend(settings.backend_url))
    with running(scorer) as errors:
        time.sleep(3)
        assert scorer.stats.consumed == 0 and scorer.stats.scored == 0
        publish_model(settings, bundled_model(2))
        wait_until(lambda: scorer.stats.scored >= 300, 60, "scoring after the model arrived")
    assert not errors
    assert np.isclose(scorer.stats.scored, 300)


def test_replay_adds_no_rows_and_reemits(make_settings: Callable[..., Settings], test_split: MnistSplit) -> None:
    settings = make_settings(batch_size=100)
    ensure_topics(settings)
    publish_model(settings, bundled_model(2))
    produce_images(settings, test_split, limit=300)
    for round_ in range(2):
        # the second round uses a new group: Kafka has no offsets, the DB offsets decide
        scorer = Scorer(settings.with_overrides(group=f"{settings.group}-{round_}"), open_backend(settings.backend_url))
        with running(scorer) as errors:
            wait_until(lambda s=scorer: s.stats.scored >= 300, 60, "scoring")
        assert not errors
    db = duckdb.connect(settings.backend_url.removeprefix("duckdb:///"), read_only=True)
    assert db.execute("SELECT count(*), count(DISTINCT image_id) FROM predictions").fetchall() == [(300, 300)]
    assert db.execute("SELECT count(*) FROM images").fetchall() == [(300,)]
    db.close()


def test_signed_models_only_when_a_public_key_is_set(make_settings: Callable[..., Settings],
                                                    tmp_path: Path) -> None:
    ours, theirs = generate_key_files(tmp_path / "ours"), generate_key_files(tmp_path / "theirs")
    settings = make_settings(model_public_key=ours.public.read_text())
    ensure_topics(settings)
    publish_model(settings, bundled_model(1))  # unsigned
    publish_model(settings, bundled_model(2).with_version(2), sign_key=load_private_key(theirs.private))
    scorer = Scorer(settings, open_backend(settings.backend_url))
    with running(scorer) as errors:
        wait_until(lambda: len(scorer.watcher.rejected) >= 2, 30, "both bad artifacts to be rejected")
        assert scorer.watcher.current is None
        publish_model(settings, bundled_model(2).with_version(3), sign_key=load_private_key(ours.private))
        wait_until(lambda: scorer.stats.model_version == 3, 30, "the signed model")
    assert not errors
    assert [r.reason for r in scorer.watcher.rejected] == ["unsigned", "bad-signature"]
    events = read_predictions(settings, idle_timeout=1.0).rejections
    assert sorted((version, reason) for _, version, reason, _, _ in events) == [(1, "unsigned"), (2, "bad-signature")]
