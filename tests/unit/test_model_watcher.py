"""The models-topic reader on fake Kafka clients and a real DuckDB file."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamscore.backends import open_backend
from streamscore.backends.base import Backend
from streamscore.consumers import model_watcher
from streamscore.consumers.model_watcher import ModelWatcher
from streamscore.models import bundled_model
from support.fake_kafka import FakeCluster
from support.loop_harness import loop_settings


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[Backend]:
    database = open_backend(f"duckdb:///{tmp_path / 'watcher.duckdb'}")
    database.connect()
    database.init_schema()
    yield database
    database.close()


def events(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == name]


def test_a_wiped_models_topic_is_read_again_and_the_lost_model_named(
        tmp_path: Path, backend: Backend, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.INFO)
    monkeypatch.setattr(model_watcher, "WIPE_CHECK_S", 0.0)
    monkeypatch.setattr(model_watcher, "WIPED_TOPIC_GRACE_S", 0.0)
    cluster = FakeCluster()
    settings = loop_settings(tmp_path)
    cluster.create_topic(settings.models_topic, 1)
    cluster.publish_model(settings.models_topic, bundled_model(1))
    watcher = ModelWatcher(settings, backend, consumer_factory=cluster.make_consumer)
    assert watcher.poll(0.5) is not None and watcher.current_ref is not None
    watcher.poll(0)
    assert not events(caplog, "models-topic-reset") and not events(caplog, "models-topic-empty")

    cluster.topics[settings.models_topic] = [[]]  # a broker restarted without its data
    readers = len(cluster.consumers)
    watcher.poll(0)
    assert [r.event_data for r in events(caplog, "models-topic-reset")] == [{"partition": 0}]
    watcher.poll(0)
    assert len(cluster.consumers) == readers + 1, "a fresh reader reads the topic anew"
    assert [r.event_data["version"] for r in events(caplog, "models-topic-empty")] == [1]
    assert watcher.current_ref is not None and watcher.current_ref.version == 1, "v1 keeps serving"

    cluster.publish_model(settings.models_topic, bundled_model(2))
    watcher.poll(0.5)
    assert watcher.current_ref is not None and watcher.current_ref.version == 2
