"""The models-topic reader on fake Kafka clients and a real DuckDB file."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamscore.backends import open_backend
from streamscore.backends.base import Backend, ModelRef
from streamscore.consumers import model_watcher
from streamscore.consumers.model_watcher import ModelWatcher
from streamscore.model.artifact import ModelArtifact
from streamscore.models import bundled_model
from streamscore.shared.config import Settings
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
    _poll_until(watcher, 2)  # installed ahead, then served


def _poll_until(watcher: ModelWatcher, version: int) -> None:
    deadline = time.monotonic() + 20
    while watcher.current_ref is None or watcher.current_ref.version != version:
        assert time.monotonic() < deadline, f"v{version} never served; rejected: {list(watcher.rejected)}"
        watcher.poll(0.1)


def _models_topic(tmp_path: Path, **overrides: object) -> tuple[FakeCluster, Settings]:
    cluster = FakeCluster()
    settings = loop_settings(tmp_path).with_overrides(**overrides)
    cluster.create_topic(settings.models_topic, 1)
    return cluster, settings


def _publish_later(cluster: FakeCluster, settings: Settings, artifact: ModelArtifact) -> None:
    time.sleep(0.002)  # published after the reader started (ms timestamps)
    cluster.publish_model(settings.models_topic, artifact)


def test_a_version_published_while_reading_is_installed_ahead_and_served_once_ready(
        tmp_path: Path, backend: Backend) -> None:
    cluster, settings = _models_topic(tmp_path)
    cluster.publish_model(settings.models_topic, bundled_model(1))
    watcher = ModelWatcher(settings, backend, consumer_factory=cluster.make_consumer)
    _poll_until(watcher, 1)
    assert watcher.ahead.taken == 0, "the topic's history is installed on the loop, not ahead"

    _publish_later(cluster, settings, bundled_model(2))
    _poll_until(watcher, 2)
    watcher.shutdown()
    assert watcher.ahead.taken == 1, "v2 was installed and canary-checked on the second session"
    assert backend.installed_versions("mlp") == [1, 2]
    assert backend.load_model(ModelRef("mlp", 2)).sha256 == bundled_model(2).sha256


def test_a_version_that_fails_ahead_is_decided_by_the_loop_as_before(tmp_path: Path, backend: Backend) -> None:
    cluster, settings = _models_topic(tmp_path)
    cluster.publish_model(settings.models_topic, bundled_model(1))
    backend.install_model(bundled_model(2))  # v2 is stored here with other weights than the ones published
    watcher = ModelWatcher(settings, backend, consumer_factory=cluster.make_consumer)
    _poll_until(watcher, 1)
    _publish_later(cluster, settings, bundled_model(3).with_version(2))
    deadline = time.monotonic() + 20
    while not watcher.rejected:
        assert time.monotonic() < deadline, "the conflicting version was never rejected"
        watcher.poll(0.1)
    watcher.shutdown()
    assert [(r.version, r.reason) for r in watcher.rejected] == [(2, "version-conflict")]
    assert watcher.ahead.taken == 0 and watcher.current_ref == ModelRef("mlp", 1)


def test_installing_ahead_can_be_turned_off(tmp_path: Path, backend: Backend) -> None:
    cluster, settings = _models_topic(tmp_path, install_ahead=False)
    watcher = ModelWatcher(settings, backend, consumer_factory=cluster.make_consumer)
    watcher.poll(0)  # the reader starts before the version is published
    _publish_later(cluster, settings, bundled_model(2))
    _poll_until(watcher, 2)
    watcher.shutdown()
    assert watcher.ahead.taken == 0
