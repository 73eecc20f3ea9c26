"""PostgreSQL-specific behaviour beyond the contract suite: error mapping, reconnect, concurrent init."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
import psycopg
import pytest

from postgres_fixtures import postgres_test_url, postgres_url, skip_unless_postgres
from streamscore.backends import ImageBatch, ModelRef, SourceOffset, open_backend
from streamscore.backends.postgres import PostgresBackend
from streamscore.errors import ArtifactError, BackendDataError, BackendError, BackendUnavailable
from streamscore.models import bundled_model

pytestmark = pytest.mark.postgres
__all__ = ["postgres_url"]  # the fixture, imported for pytest


@pytest.fixture
def backend(postgres_url: str) -> Iterator[PostgresBackend]:
    database = open_backend(postgres_url)
    assert isinstance(database, PostgresBackend)
    database.connect()
    try:
        yield database
    finally:
        database.close()


def one_image_batch(image_id: str, label: int = 3) -> ImageBatch:
    return ImageBatch(
        "b", [image_id], np.zeros((1, 784), np.uint8), np.asarray([label], np.int16), np.zeros(1, np.int64),
        [SourceOffset("t", 0, 0)], {("t", 0): 1},
    )


def test_missing_tables_are_fatal_and_name_the_fix(backend: PostgresBackend) -> None:
    with pytest.raises(BackendError) as failure:
        backend.stored_offsets("g", "t")
    assert not failure.value.retriable and not isinstance(failure.value, BackendDataError)
    assert "[42P01]" in str(failure.value) and "streamscore db init" in str(failure.value)


def test_a_data_error_carries_the_sqlstate(backend: PostgresBackend) -> None:
    backend.init_schema()
    backend.install_model(bundled_model(1))
    with pytest.raises(BackendDataError) as failure:
        backend.write_batch(one_image_batch("x-1", label=12), ModelRef("mlp", 1), "g")  # CHECK 0..9
    assert "[23514]" in str(failure.value)
    assert backend.stored_offsets("g", "t") == {}


def test_an_unknown_model_is_fatal(backend: PostgresBackend) -> None:
    backend.init_schema()
    with pytest.raises(ArtifactError) as failure:
        backend.write_batch(one_image_batch("x-1"), ModelRef("mlp", 99), "g")
    assert "[P0002]" in str(failure.value) and not failure.value.retriable
    assert failure.value.reason == "not-installed"


def test_a_lost_connection_is_retriable_and_connect_reopens(backend: PostgresBackend, postgres_url: str) -> None:
    backend.init_schema()
    backend.store_offsets("g", {("t", 0): 3})
    pid = backend._connection().info.backend_pid
    with psycopg.connect(postgres_test_url(), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    with pytest.raises(BackendUnavailable):
        backend.stored_offsets("g", "t")
    backend.close()
    backend.connect()
    assert backend.stored_offsets("g", "t") == {0: 3}


def test_concurrent_init_schema_does_not_fail(postgres_url: str) -> None:
    errors: list[BaseException] = []

    def init() -> None:
        try:
            with open_backend(postgres_url) as database:
                database.init_schema()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=init) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_an_auth_failure_never_shows_the_password() -> None:
    skip_unless_postgres()
    url = postgres_test_url()
    scheme, rest = url.split("://", 1)
    host_part = rest.split("@", 1)[-1]
    backend = open_backend(f"{scheme}://no_such_user_ss:Sup3rSecretPw@{host_part}")
    with pytest.raises(BackendError) as failure:
        backend.connect()
    text = f"{failure.value} {failure.value!r} {backend!r}"
    assert "Sup3rSecretPw" not in text
    assert not failure.value.retriable  # a wrong user or password does not heal by waiting


def test_model_role_and_schema_isolation(postgres_url: str) -> None:
    with open_backend(postgres_url) as shadow:
        shadow.init_schema()
        shadow.install_model(bundled_model(2))
        scored = shadow.write_batch(one_image_batch("s-1"), ModelRef("mlp", 2, "shadow"), "g")
        row = shadow._connection().execute("SELECT role FROM predictions").fetchone()  # type: ignore[attr-defined]
    assert scored.image_ids == ["s-1"] and row == ("shadow",)
