"""PostgreSQL-specific behaviour beyond the contract suite: error mapping, reconnect, concurrent init."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import numpy as np
import psycopg
import pytest

from postgres_fixtures import postgres_test_url, skip_unless_postgres
from streamscore.backends import ImageBatch, ModelRef, SourceOffset, open_backend
from streamscore.backends.postgres import PostgresBackend
from streamscore.errors import ArtifactError, BackendDataError, BackendError, BackendUnavailable
from streamscore.models import bundled_model
from streamscore.shared.mnist import load_split

pytestmark = pytest.mark.postgres


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


def test_init_schema_logs_the_blas_of_the_server_numpy(
    backend: PostgresBackend, caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="streamscore.backends.postgres.blas"):
        backend.init_schema()
        backend.init_schema()  # once per backend
    (record,) = [r for r in caplog.records if r.name == "streamscore.backends.postgres.blas"]
    known = ("openblas", "mkl", "blis", "atlas", "accelerate", "armpl", "reference", "unknown")
    assert any(kind in record.getMessage() for kind in known)
    assert (record.levelno == logging.WARNING) == ("reference BLAS" in record.getMessage())


def test_the_scoring_session_runs_one_blas_thread(backend: PostgresBackend) -> None:
    """OpenBLAS in a server process that scored keeps to one thread (docs/decisions.md, "BLAS threads and
    paced producers"): on a machine with several cores it would start one per core."""
    backend.init_schema()
    model = bundled_model(2)
    backend.install_model(model)
    backend.score(load_split("test").images[:2000], ModelRef(model.name, model.version))
    conn = backend._connection()
    conn.execute("CREATE OR REPLACE FUNCTION session_threads() RETURNS integer LANGUAGE plpython3u AS "
                 "$$ import os; return len(os.listdir('/proc/self/task')) $$")
    ((threads,),) = conn.execute("SELECT session_threads()").fetchall()
    conn.rollback()
    assert threads == 1


def test_layer_weights_are_not_offered_to_pglz(backend: PostgresBackend) -> None:
    """Float weights do not compress, pglz only spends time trying (docs/decisions.md): the column is
    stored EXTERNAL, also in a database created before that was set."""
    backend.init_schema()
    conn = backend._connection()
    storage = "SELECT attstorage FROM pg_attribute WHERE attrelid = 'model_layers'::regclass AND attname = 'weights'"
    conn.execute("ALTER TABLE model_layers ALTER COLUMN weights SET STORAGE EXTENDED")  # as created before
    conn.commit()
    assert conn.execute(storage).fetchall() == [("x",)]
    backend.init_schema()
    assert conn.execute(storage).fetchall() == [("e",)]
    conn.rollback()


def _mixed_batch(batch_id: str, first: int, count: int, offset: int) -> ImageBatch:
    split = load_split("test")
    rows = np.arange(first, first + count)
    return ImageBatch(
        batch_id, [f"m-{row:05d}" for row in rows], split.images[rows], split.labels[rows].astype(np.int16),
        np.zeros(count, np.int64), [SourceOffset("t", 0, offset + n) for n in range(count)],
        {("t", 0): offset + count},
    )


def test_a_batch_with_a_stored_id_falls_back_and_new_ones_still_go_in(backend: PostgresBackend) -> None:
    backend.init_schema()
    backend.install_model(bundled_model(1))
    backend.write_batch(_mixed_batch("one", 0, 10, 0), ModelRef("mlp", 1), "g")  # fast path: all new
    scored = backend.write_batch(_mixed_batch("two", 5, 10, 10), ModelRef("mlp", 1), "g")  # 5 stored, 5 new
    assert scored.image_ids == [f"m-{row:05d}" for row in range(5, 15)] and scored.conflicts == []
    counts = backend._connection().execute("SELECT count(*) FROM images UNION ALL SELECT count(*) FROM predictions")
    assert [row[0] for row in counts.fetchall()] == [15, 15]
    assert backend.stored_offsets("g", "t") == {0: 20}
    # both paths report where a batch's time goes (streamscore bench's breakdown)
    assert {"insert", "score", "offsets", "commit"} <= set(backend.timings.seconds)
    assert all(seconds > 0 for seconds in backend.timings.seconds.values())


def test_concurrent_writers_of_overlapping_ids_store_each_once(postgres_url: str) -> None:
    with open_backend(postgres_url) as setup:
        setup.init_schema()
        setup.install_model(bundled_model(1))
    barrier = threading.Barrier(2)
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def write(first: int) -> None:
        try:
            with open_backend(postgres_url) as database:
                for round_ in range(5):
                    batch = _mixed_batch(f"w{first}-{round_}", round_ * 40 + first, 40, first * 1000 + round_ * 40)
                    barrier.wait(timeout=30)
                    results.append(database.write_batch(batch, ModelRef("mlp", 1), f"g{first}").image_ids)
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=write, args=(first,)) for first in (0, 20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(results) == 10 and all(len(ids) == 40 for ids in results)
    with open_backend(postgres_url) as check:
        counts = check._connection().execute(  # type: ignore[attr-defined]
            "SELECT count(*), count(DISTINCT image_id) FROM predictions").fetchone()
    assert counts == (220, 220)  # ids 0 … 219 (each round overlaps by 20), each stored and scored once
