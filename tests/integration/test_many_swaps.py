"""100 hot swaps in a row keep every per-version cache bounded (issue 12 part 5).

The scoring loop runs on fake Kafka clients (tests/support/loop_harness.py) against a real
DuckDB file and a real PostgreSQL schema; between two swaps a small stream of images is scored.
The checks count what is cached, never RSS (a threshold on RSS would be flaky): the weights
cached in the process (DuckDB's UDF cache) and in the database session (PostgreSQL's GD, read
through streamscore_cached_models() on the scorer's own connection after every batch), the
ModelArtifact objects still alive in this process, the Prometheus series per version and the
rejections the watcher remembers.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamscore.backends import Backend, ScoredBatch, open_backend
from streamscore.backends.model_cache import MAX_CACHED_VERSIONS
from streamscore.consumers.metrics import METRIC_VERSIONS
from streamscore.model.artifact import ModelArtifact
from streamscore.models import bundled_model
from support.fake_kafka import FakeCluster
from support.loop_harness import LoopRun, loop_settings

SWAPS = 100
IMAGES_PER_SWAP = 3


def live_artifacts() -> int:
    """ModelArtifact objects this process still holds (the weights of one version each)."""
    gc.collect()
    return sum(isinstance(o, ModelArtifact) for o in gc.get_objects())


def swap_many_times(tmp_path: Path, backend: Backend, backend_url: str) -> None:
    """Serve v1, then publish v2 … v101 one after another with a few images in between."""
    cluster = FakeCluster()
    cached: list[list[tuple[str, int]] | None] = []

    def on_batch(_: ScoredBatch) -> None:  # the scorer's thread: the session the scorer uses
        cached.append(backend.cached_models())

    settings = loop_settings(tmp_path, backend=backend_url, partitions=1)
    run = LoopRun(settings, cluster, backend, on_batch=on_batch)
    base = bundled_model(1)
    before = live_artifacts()
    expected: list[str] = []
    for version in range(2, SWAPS + 2):
        cluster.publish_model("models", base.with_version(version))
        ids = [f"s{version:03d}-{i}" for i in range(IMAGES_PER_SWAP)]
        expected += ids
        cluster.send_images("images", ids)
        run.wait(lambda v=version: run.scorer.stats.model_version == v, f"the swap to v{version}", timeout=30)
        run.wait(lambda n=len(expected): len(run.predicted_ids()) == n, f"the images before v{version + 1}")
    cluster.send_images("images", ["last"])  # scored by the newest version
    run.wait(lambda: len(run.predicted_ids()) == len(expected) + 1, "the last image")
    assert run.finish() is None
    assert sorted(run.predicted_ids()) == sorted([*expected, "last"]), "every image predicted once"
    assert run.scorer.stats.model_version == SWAPS + 1 and not run.scorer.watcher.rejected
    assert run.scorer.stats.per_version.get(SWAPS + 1) == 1

    counts = [len(c) for c in cached if c is not None]
    assert counts, "the backend says what it caches"
    assert max(counts) <= MAX_CACHED_VERSIONS, f"cached versions per batch: {counts}"
    assert cached[-1] is not None and ("mlp", SWAPS + 1) in cached[-1]
    assert len(run.scorer.metrics.scored.versions()) <= METRIC_VERSIONS
    # the watcher's current version and the backend's cache; nothing per swap
    assert live_artifacts() <= before + MAX_CACHED_VERSIONS + 1


@pytest.fixture
def duckdb_backend(tmp_path: Path) -> Iterator[tuple[Backend, str]]:
    url = f"duckdb:///{tmp_path / 'swaps.duckdb'}"
    backend = open_backend(url)
    yield backend, url
    backend.close()


def test_100_swaps_keep_the_duckdb_caches_bounded(tmp_path: Path, duckdb_backend: tuple[Backend, str]) -> None:
    swap_many_times(tmp_path, *duckdb_backend)


def test_100_swaps_keep_the_postgres_session_cache_bounded(tmp_path: Path, postgres_url: str) -> None:
    backend = open_backend(postgres_url)
    try:
        swap_many_times(tmp_path, backend, postgres_url)
    finally:
        backend.close()
