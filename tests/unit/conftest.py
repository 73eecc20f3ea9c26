"""Fixtures of the loop tests on fake Kafka clients: a fake cluster and a real DuckDB file with test switches."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.fake_kafka import FakeCluster
from support.loop_harness import FlakyDuckDB


@pytest.fixture
def cluster() -> FakeCluster:
    return FakeCluster()


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[FlakyDuckDB]:
    database = FlakyDuckDB(f"duckdb:///{tmp_path / 'loop.duckdb'}")
    yield database
    database.close()
