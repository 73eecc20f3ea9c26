"""The PostgreSQL backend without a server: registry, missing driver, error mapping, URLs."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from streamscore.backends import open_backend, resolve_backend
from streamscore.backends.postgres import errors as pe
from streamscore.backends.postgres.statements import conninfo
from streamscore.backends.url import BackendURL
from streamscore.errors import (
    ArtifactError,
    BackendDataError,
    BackendError,
    BackendUnavailable,
    ErrorKind,
    MissingDependencyError,
)


@pytest.fixture
def fresh_registry() -> Iterator[None]:
    resolve_backend.cache_clear()
    yield
    resolve_backend.cache_clear()


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_schemes_resolve_to_the_postgres_backend(scheme: str) -> None:
    assert resolve_backend(scheme).__name__ == "PostgresBackend"


def test_a_missing_driver_names_the_pip_extra(monkeypatch: pytest.MonkeyPatch, fresh_registry: None) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # "import psycopg" now fails as if not installed
    for module in [name for name in sys.modules if name.startswith("streamscore.backends.postgres")]:
        monkeypatch.delitem(sys.modules, module)
    with pytest.raises(MissingDependencyError, match=r"pip install 'streamscore\[postgres\]'"):
        open_backend("postgresql://user@localhost/db")


def error(sqlstate: str) -> psycopg.Error:
    return psycopg.errors.lookup(sqlstate)("boom")


@pytest.mark.parametrize(
    ("sqlstate", "kind"),
    [
        ("08006", "retriable"), ("40001", "retriable"), ("40P01", "retriable"), ("57P01", "retriable"),
        ("57P03", "retriable"), ("53300", "retriable"), ("22003", "data"), ("23514", "data"),
        ("23502", "data"), ("23503", "data"), ("42P01", "fatal"), ("42501", "fatal"), ("42601", "fatal"),
    ],
)
def test_sqlstates_are_classified(sqlstate: str, kind: str) -> None:
    assert pe.classify(error(sqlstate)).kind == kind


def backend(url: str = "postgresql://u@h/db") -> Any:
    return open_backend(url)


def test_translated_errors_carry_the_sqlstate_the_reason_and_the_fix() -> None:
    data = backend().translate(error("23514"), "writing batch b")
    assert isinstance(data, BackendDataError) and "[23514]" in str(data) and data.reason == "db-rejected"
    fatal = backend().translate(error("42501"), "creating the schema")
    assert type(fatal) is BackendError and "superuser" in str(fatal)
    retry = backend().translate(error("40P01"), "writing batch b")
    assert isinstance(retry, BackendUnavailable) and retry.retry_after < 1 and retry.reason == "deadlock"
    assert pe.classify(error("40P01")) == ErrorKind("retriable", "deadlock", 0.2)
    missing = backend().translate(error("P0002"), "writing batch b")
    assert isinstance(missing, ArtifactError) and missing.reason == "not-installed"


def test_connection_failures_without_sqlstate() -> None:
    refused = psycopg.OperationalError("connection failed: Connection refused")
    assert pe.classify(refused) == ErrorKind("retriable", "connection-lost", 1.0)
    no_role = psycopg.OperationalError('connection failed: FATAL:  role "x" does not exist')
    assert pe.classify(no_role).kind == "fatal" and pe.sqlstate(no_role) == "28000"
    no_database = psycopg.OperationalError('connection failed: FATAL:  database "scores" does not exist')
    assert pe.classify(no_database).kind == "fatal" and pe.sqlstate(no_database) == "3D000"
    restarting = psycopg.OperationalError(
        'connection failed: FATAL:  database "scores" is not currently accepting connections')
    assert pe.classify(restarting).kind == "retriable"


@pytest.mark.parametrize("message", [
    'connection failed: connection to server at "127.0.0.1", port 5432 failed: server does not support SSL, '
    'but SSL was required',
    'connection is bad: invalid sslmode value: "bogus"',
    'connection is bad: invalid port number: "99999"',
])
def test_refused_connection_settings_are_permanent_and_name_the_fix(message: str) -> None:
    """issue 11: sslmode=require on a server without SSL is no outage; retrying forever would hide it."""
    refused = psycopg.OperationalError(message)
    assert pe.classify(refused) == ErrorKind("fatal", "connection-settings")
    translated = backend().translate(refused, "connecting")
    assert type(translated) is BackendError and " — " in str(translated)


def test_the_password_is_scrubbed_from_driver_messages() -> None:
    leaked = psycopg.OperationalError("connection failed: password=hunter2 is not accepted")
    assert "hunter2" not in str(backend("postgresql://u:hunter2@h/db").translate(leaked, "connecting"))


def test_conninfo_passes_libpq_options_and_keeps_our_own() -> None:
    url = BackendURL.parse("postgresql://u:p%40ss@db.example:5433/scores?schema=s1&sslmode=require")
    text = conninfo(url)
    assert "sslmode=require" in text and "port=5433" in text and "dbname=scores" in text
    assert "schema" not in text and "connect_timeout=10" in text
    assert "p@ss" in text  # the password reaches libpq unescaped …
    assert "p@ss" not in repr(open_backend(url.raw))  # … and never a repr
