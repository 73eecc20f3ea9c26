"""Drive the scoring loop in a thread on fake Kafka clients and a real DuckDB file.

:class:`FlakyDuckDB` is the real DuckDB backend with switches a test turns (our own seam,
the Backend contract): a database that is away, a batch that keeps failing, a refused
image id, a hook that runs before each write.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from streamscore.backends.base import ImageBatch, ModelRef, ScoredBatch, ServingSet
from streamscore.backends.duckdb import DuckDBBackend
from streamscore.backends.url import BackendURL
from streamscore.consumers.scorer import Scorer
from streamscore.errors import BackendDataError, BackendUnavailable
from streamscore.model.artifact import ModelArtifact
from streamscore.models import bundled_model
from streamscore.shared.config import Settings, load_settings
from streamscore.shared.evaluation_events import ModelRejected, record_kind
from support.fake_kafka import FakeCluster

if TYPE_CHECKING:
    from streamscore.backends import Backend


class FlakyDuckDB(DuckDBBackend):
    """DuckDB with test switches: ``away`` (calls fail as an unreachable server), ``failing_writes``
    (the next writes fail as a retriable error from a live database), ``refused`` ids."""

    def __init__(self, url: str) -> None:
        super().__init__(BackendURL.parse(url))
        self.away = False
        self.failing_writes = 0
        #: the next model installs fail as an outage would (the weights are not stored)
        self.failing_installs = 0
        self.refused: set[str] = set()
        self.writes = 0
        self.before_write: Callable[[ImageBatch], None] = lambda batch: None
        self._in_set = False

    def connect(self) -> None:
        if self.away:
            raise BackendUnavailable("duckdb away (test)", retry_after=0.0)
        super().connect()

    def install_model(self, artifact: ModelArtifact) -> None:
        if self.away or self.failing_installs:
            self.failing_installs = max(0, self.failing_installs - 1)
            raise BackendUnavailable("duckdb away while installing (test)", retry_after=0.0)
        super().install_model(artifact)

    def write_set(self, batch: ImageBatch, serving: ServingSet, group: str) -> list[ScoredBatch]:
        """What the loop calls (one per transaction), with the test switches applied first."""
        self._switches(batch)
        self._in_set = True
        try:
            return super().write_set(batch, serving, group)
        finally:
            self._in_set = False

    def write_batch(self, batch: ImageBatch, model: ModelRef, group: str) -> ScoredBatch:
        if not self._in_set:
            self._switches(batch)
        return super().write_batch(batch, model, group)

    def _switches(self, batch: ImageBatch) -> None:
        self.writes += 1
        self.before_write(batch)
        if self.away:
            raise BackendUnavailable("duckdb away (test)", retry_after=0.0)
        if self.failing_writes:
            self.failing_writes -= 1
            raise BackendUnavailable("transient failure (test)", retry_after=0.0)
        if self.refused & set(batch.image_ids):
            raise BackendDataError("refused id (test)")

    def rows(self) -> tuple[list[tuple[str, int]], set[str]]:
        """Prediction rows and image ids, read through a second connection of this process."""
        with duckdb.connect(self.path, read_only=False) as con:
            rows = [(str(i), int(v)) for i, v in con.execute(
                "SELECT image_id, model_version FROM predictions").fetchall()]
            images = {str(i) for (i,) in con.execute("SELECT image_id FROM images").fetchall()}
        return rows, images


def loop_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "kafka_bootstrap": "fake:9092", "images_topic": "images", "predictions_topic": "predictions",
        "models_topic": "models", "dlq_topic": "dlq", "group": "g", "partitions": 2,
        "backend": f"duckdb:///{tmp_path / 'loop.duckdb'}", "batch_size": 16, "linger_ms": 5,
        "session_timeout_ms": 1000, "retry_backoff_start_s": 0.01, "retry_backoff_max_s": 0.05,
        "max_batch_retries": 5, "stall_timeout_s": 60,
    }
    return load_settings(**(values | overrides))


class LoopRun:
    """A scorer running in a thread; :meth:`finish` stops it and returns what ``run`` raised."""

    def __init__(self, settings: Settings, cluster: FakeCluster, backend: Backend, **options: Any) -> None:
        self.settings, self.cluster, self.backend = settings, cluster, backend
        for topic, partitions in ((settings.images_topic, settings.partitions), (settings.models_topic, 1),
                                  (settings.predictions_topic, 1), (settings.dlq_topic, 1)):
            cluster.create_topic(topic, partitions)
        if not cluster.messages(settings.models_topic):
            cluster.publish_model(settings.models_topic, bundled_model(1))
        self.scorer = Scorer(settings, backend, consumer_factory=cluster.make_consumer,
                             producer_factory=cluster.make_producer, **options)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.scorer.run()
        except BaseException as exc:  # handed to the test by finish()
            self.error = exc

    def predicted_ids(self) -> list[str]:
        return [(m.key() or b"").decode() for m in self.cluster.messages(self.settings.predictions_topic)
                if record_kind(m.headers(), m.value()) is None]

    def events(self) -> list[ModelRejected]:
        """The model-rejected records on the evaluation topic, in order."""
        records = self.cluster.messages(self.settings.predictions_topic)
        return [ModelRejected.from_json(m.value() or b"") for m in records
                if record_kind(m.headers(), m.value()) is not None]

    def wait(self, predicate: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
        """Until ``predicate`` holds (re-checked on every change of the cluster, at least every 20 ms)."""
        deadline = time.monotonic() + timeout
        while not predicate() and self.thread.is_alive() and time.monotonic() < deadline:
            with self.cluster.changed:
                self.cluster.changed.wait(0.02)
        if not predicate():
            raise AssertionError(f"waiting for {what}: scorer alive={self.thread.is_alive()}, error={self.error!r}")

    def finish(self, timeout: float = 20.0) -> BaseException | None:
        self.scorer.stop.set()
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise AssertionError("the scorer did not stop")
        return self.error
