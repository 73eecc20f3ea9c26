"""The Backend base class without a database: URL options, capabilities, error classification."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from streamscore.backends import open_backend, resolve_backend
from streamscore.backends.duckdb import errors as duckdb_errors
from streamscore.errors import (
    ArtifactError,
    BackendDataError,
    BackendError,
    BackendUnavailable,
    ConfigError,
    ErrorKind,
)


class Refused(Exception):
    """A stand-in driver error the tests classify by hand."""


@pytest.mark.parametrize(
    ("kind", "expected", "reason"),
    [
        (ErrorKind("data", "db-rejected"), BackendDataError, "db-rejected"),
        (ErrorKind("retriable", "deadlock", 0.3), BackendUnavailable, "deadlock"),
        (ErrorKind("retriable", "connection-lost"), BackendUnavailable, "connection-lost"),
        (ErrorKind("fatal", "backend"), BackendError, "backend"),
        (ErrorKind("fatal", "not-installed"), ArtifactError, "not-installed"),
    ],
)
def test_translate_builds_the_error_from_the_classification(
    monkeypatch: pytest.MonkeyPatch, kind: ErrorKind, expected: type[Exception], reason: str,
) -> None:
    backend = open_backend("duckdb:///:memory:")
    monkeypatch.setattr(backend, "classify", lambda exc: kind)
    error = backend.translate(Refused("row 3"), "writing batch b")
    assert type(error) is expected and error.reason == reason
    assert "writing batch b" in error.message and "row 3" in error.message
    if isinstance(error, BackendUnavailable):
        assert error.retry_after == (1.0 if kind.retry_after is None else kind.retry_after)


def test_duckdb_classifies_by_exception_class() -> None:
    import duckdb

    assert duckdb_errors.classify(duckdb.ConstraintException("x")) == ErrorKind("data", "db-rejected")
    assert duckdb_errors.classify(duckdb.IOException("locked")).kind == "retriable"
    assert duckdb_errors.classify(duckdb.CatalogException("no table")) == ErrorKind("fatal", "backend")


def test_capabilities_are_declared_not_guessed_from_urls() -> None:
    assert "train" in resolve_backend("kinetica").implements
    assert "train" not in resolve_backend("duckdb").implements
    assert "drop-schema" in resolve_backend("postgresql").implements
    duck = open_backend("duckdb:///:memory:")
    with pytest.raises(ConfigError, match="does not implement 'train'"):
        duck.require("train")
    with pytest.raises(ConfigError, match="does not implement 'drop-schema'"):
        duck.drop_schema()
    assert duck.engine_benchmarks(10) == {}


def test_train_in_database_needs_a_backend_that_trains(tmp_path: Path) -> None:
    database = tmp_path / "t.duckdb"
    result = subprocess.run(
        [sys.executable, "-m", "streamscore.cli", "train", "--in-database", "--steps", "1",
         "--out", str(tmp_path / "m.npz"), "--backend", f"duckdb:///{database}"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode != 0
    assert "does not implement 'train'" in result.stdout + result.stderr
    assert not database.exists()  # refused before connecting
