"""Shared fixtures: the MNIST folder, one embedded broker per session, settings with unique topics."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from streamscore.broker import EmbeddedBroker
from streamscore.shared.config import Settings, default_mnist_dir, load_settings
from streamscore.shared.mnist import MnistSplit, load_split

#: fixture modules (plain helpers in them are imported where they are used; fixtures never are)
pytest_plugins = ["support.proxied_broker", "postgres_fixtures", "oracle_fixtures", "kinetica_fixtures"]


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """STREAMSCORE_MNIST_DIR, else ../shared/data/mnist of the checkout, else the package's copy.

    The package bundles the canonical test split (same checksums), so the tests run in any clone.
    """
    for folder in (os.environ.get("STREAMSCORE_MNIST_DIR"), default_mnist_dir(),
                   resources.files("streamscore") / "data"):
        if folder and (Path(str(folder)) / "t10k-images-idx3-ubyte.gz").exists():
            return Path(str(folder))
    pytest.skip("MNIST test files not found; set STREAMSCORE_MNIST_DIR")


@pytest.fixture(scope="session")
def test_split(mnist_dir: Path) -> MnistSplit:
    return load_split("test", mnist_dir)


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """One embedded Tansu broker for the whole session (tests use unique topic names)."""
    log = tmp_path_factory.mktemp("broker") / "broker.log"
    with EmbeddedBroker(log_path=log) as running:
        yield running


@pytest.fixture
def make_settings(broker: EmbeddedBroker, tmp_path: Path) -> Callable[..., Settings]:
    """Settings on the session broker with topics and a group unique to the calling test."""

    def build(**overrides: Any) -> Settings:
        tag = uuid.uuid4().hex[:8]
        values: dict[str, Any] = {
            "kafka_bootstrap": broker.bootstrap,
            "images_topic": f"t.{tag}.images",
            "predictions_topic": f"t.{tag}.predictions",
            "models_topic": f"t.{tag}.models",
            "dlq_topic": f"t.{tag}.dlq",
            "group": f"t-{tag}",
            "backend": f"duckdb:///{tmp_path / f'{tag}.duckdb'}",
            "partitions": 2,
            "retry_backoff_start_s": 0.2,
            "retry_backoff_max_s": 1.0,
        }
        return load_settings(**(values | overrides))

    return build
