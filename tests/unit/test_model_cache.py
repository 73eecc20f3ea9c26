"""The bounded per-version caches: the LRU in the process, the same bound in the database-side
caches (PostgreSQL GD, Oracle package state), and the Prometheus series per version."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from streamscore.backends import open_backend
from streamscore.backends.duckdb import DuckDBBackend
from streamscore.backends.model_cache import MAX_CACHED_VERSIONS, VersionCache
from streamscore.backends.sqlfiles import read_sql
from streamscore.consumers.metrics import METRIC_VERSIONS, ScorerMetrics
from streamscore.errors import ConfigError


def test_the_least_recently_used_version_goes_first() -> None:
    cache: VersionCache[int, str] = VersionCache(limit=3)
    for version in (1, 2, 3):
        assert cache.get(version, str) == str(version)
    cache.get(1, str)  # the champion, used by every batch, stays
    cache.get(4, str)
    assert cache.keys() == [3, 1, 4]
    assert cache.loads == 4, "a hit does not load again"


def test_a_version_that_fails_to_load_evicts_nothing() -> None:
    cache: VersionCache[int, int] = VersionCache(limit=2)
    cache.get(1, int)
    cache.get(2, int)

    def missing(version: int) -> int:
        raise LookupError(version)

    with pytest.raises(LookupError):
        cache.get(3, missing)
    assert cache.keys() == [1, 2]


def test_a_thousand_versions_keep_the_limit() -> None:
    cache: VersionCache[int, int] = VersionCache()
    for version in range(1000):
        cache.get(version, int)
    assert len(cache) == MAX_CACHED_VERSIONS and cache.keys()[-1] == 999


def test_the_database_side_caches_have_the_same_bound() -> None:
    postgres = re.search(r"^CACHED_VERSIONS = (\d+)$", read_sql("postgres", "score_batch.sql"), re.MULTILINE)
    oracle = re.search(r"c_max_cached\s+CONSTANT PLS_INTEGER := (\d+);", read_sql("oracle", "mnist_scorer.sql"))
    assert postgres is not None and int(postgres[1]) == MAX_CACHED_VERSIONS
    assert oracle is not None and int(oracle[1]) == MAX_CACHED_VERSIONS


def test_the_scored_metric_keeps_a_series_for_the_recent_versions_only() -> None:
    metrics = ScorerMetrics()
    for version in range(1, 101):
        metrics.scored.labels(str(version)).inc(3)
    text = generate_latest(metrics.registry).decode()
    series = re.findall(r'^streamscore_images_scored_total\{model_version="(\d+)"\}', text, re.MULTILINE)
    assert series == [str(v) for v in range(101 - METRIC_VERSIONS, 101)]


def test_duckdb_memory_limit_is_checked_and_applied(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="512MB"):
        open_backend(f"duckdb:///{tmp_path / 'a.duckdb'}?memory_limit=lots")
    with open_backend(f"duckdb:///{tmp_path / 'a.duckdb'}?memory_limit=64MB") as backend:
        assert isinstance(backend, DuckDBBackend)
        (limit,) = backend.con.execute("SELECT current_setting('memory_limit')").fetchall()[0]
    assert str(limit).startswith("61") or str(limit).startswith("64"), limit  # 64MB = 61.0 MiB


def test_duckdb_threads_default_to_one_and_the_url_sets_them(tmp_path: Path) -> None:
    def threads(url: str) -> int:
        with open_backend(url) as backend:
            assert isinstance(backend, DuckDBBackend)
            ((count,),) = backend.con.execute("SELECT current_setting('threads')").fetchall()
        return int(count)

    assert threads(f"duckdb:///{tmp_path / 'a.duckdb'}") == 1
    assert threads(f"duckdb:///{tmp_path / 'a.duckdb'}?threads=3") == 3
    with pytest.raises(ConfigError, match="positive number"):
        open_backend(f"duckdb:///{tmp_path / 'a.duckdb'}?threads=many")
