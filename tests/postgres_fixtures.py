"""Where the PostgreSQL tests find a server: a plain module, shared by tests/integration and
tests/contract (import ``postgres_url`` into a test module or a conftest to use the fixture).

``STREAMSCORE_TEST_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/streamscore_test``)
names the server and a database dedicated to tests; the database is created (from the
``postgres`` database) when missing. Every test gets a fresh schema (``?schema=sst_<random>``
on the URL, the backend's own option) that is dropped afterwards, so tests running in parallel
or after each other never see each other's rows. The tests skip, naming the variable, only
when no server answers; any other failure (PL/Python missing, no rights) fails them. The
server needs PL/Python and numpy: ``scripts/ci-postgres.sh`` installs and checks both.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
from collections.abc import Iterator
from functools import cache

import psycopg
import pytest
from psycopg import sql

from streamscore.backends.postgres import errors as postgres_errors
from streamscore.backends.postgres.statements import conninfo
from streamscore.backends.url import BackendURL

ENV = "STREAMSCORE_TEST_POSTGRES_URL"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/streamscore_test"


def postgres_test_url() -> str:
    """The test database URL from STREAMSCORE_TEST_POSTGRES_URL (read on call), or the default."""
    return os.environ.get(ENV, "").strip() or DEFAULT_URL


def _connect(url: BackendURL) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(conninfo(url), autocommit=True, connect_timeout=5)


@cache
def postgres_unavailable() -> str | None:
    """Why no PostgreSQL answers (a skip reason naming the variable), or None once the database exists."""
    url = BackendURL.parse(postgres_test_url())
    try:
        _connect(url).close()
        return None
    except psycopg.OperationalError as exc:
        if postgres_errors.sqlstate(exc) != "3D000":  # anything but "database does not exist"
            if postgres_errors.classify(exc) == "retriable":
                return (
                    f"no PostgreSQL server answers at {url.masked()}: set {ENV}=postgresql://user@host:5432/db "
                    "(scripts/ci-postgres.sh prepares a local cluster)"
                )
            raise
    with _connect(dataclasses.replace(url, path="/postgres")) as admin, \
            contextlib.suppress(psycopg.errors.DuplicateDatabase):  # a parallel worker was first
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(url.database)))
    return None


def skip_unless_postgres() -> None:
    reason = postgres_unavailable()
    if reason is not None:
        pytest.skip(reason)


def drop_schema(schema: str) -> None:
    with _connect(BackendURL.parse(postgres_test_url())) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def with_schema(url: str, schema: str) -> str:
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}schema={schema}"


@contextlib.contextmanager
def postgres_schema_url() -> Iterator[str]:
    """A backend URL with a fresh schema name; the schema is dropped on exit."""
    skip_unless_postgres()
    schema = f"sst_{secrets.token_hex(6)}"
    try:
        yield with_schema(postgres_test_url(), schema)
    finally:
        drop_schema(schema)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL backend URL with a schema of its own (dropped after the test), or a skip."""
    with postgres_schema_url() as url:
        yield url
