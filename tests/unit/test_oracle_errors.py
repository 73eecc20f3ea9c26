"""Oracle errors that need a fix, not a retry (space, memory), internal errors, and bind order.

Exceptions are built by python-oracledb itself (``_Error``), so the ORA → DPY-4011 rewrite and
``isrecoverable`` are the driver's, not assumptions of these tests.
"""

from __future__ import annotations

import numpy as np
import oracledb
import pytest
from oracledb import errors as oracledb_errors

from streamscore.backends import BackendURL
from streamscore.backends.base import ImageBatch
from streamscore.backends.oracle import OracleBackend
from streamscore.backends.oracle import errors as oracle_errors
from streamscore.backends.oracle import statements as oracle_sql
from streamscore.errors import BackendError, BackendUnavailable, ErrorKind


def ora_exception(code: int, text: str = "error") -> BaseException:
    error = oracledb_errors._Error(f"ORA-{code:05d}: {text}", code=code)
    exc: BaseException = error.exc_type(error)
    return exc


def backend() -> OracleBackend:
    return OracleBackend(BackendURL.parse("oracle://app@db:1521/FREEPDB1"))


@pytest.mark.parametrize(
    ("code", "reason", "fix"),
    [
        (1536, "quota-exceeded", "QUOTA"),
        (1653, "out-of-space", "AUTOEXTEND"),
        (12954, "out-of-space", "12 GB"),
        (4030, "out-of-memory", "--batch-size"),
        (4036, "out-of-memory", "PGA_AGGREGATE_LIMIT"),
    ],
)
def test_space_and_memory_errors_are_fatal_and_name_the_fix(code: int, reason: str, fix: str) -> None:
    exc = ora_exception(code, "limit reached")
    assert oracle_errors.classify(exc) == ErrorKind("fatal", reason)
    error = backend().translate(exc, "writing batch b-1")  # type: ignore[arg-type]
    assert type(error) is BackendError
    assert error.reason == reason
    assert f"ORA-{code:05d}" in str(error) and fix in str(error)


def test_a_quota_error_on_one_row_stops_the_batch_with_the_fix() -> None:
    rows = [oracledb_errors._Error("ORA-00001: unique", code=1, offset=0),
            oracledb_errors._Error("ORA-01536: space quota exceeded", code=1536, offset=1)]
    error = oracle_errors.row_errors(rows, [("a",), ("b",)])
    assert type(error) is BackendError and error.reason == "quota-exceeded"
    assert "'b'" in str(error) and "QUOTA" in str(error)


def test_internal_error_arrives_as_a_lost_session_and_is_retriable() -> None:
    exc = ora_exception(600, "internal error code, arguments: [kdsgrp1]")
    assert oracle_errors.error_codes(exc) == (600, "DPY-4011")
    assert exc.args[0].isrecoverable
    assert oracle_errors.is_dead_session(exc)
    assert oracle_errors.classify(exc) == ErrorKind("retriable", "database-internal-error", 1.0)
    error = backend().translate(exc, "writing batch b-1")  # type: ignore[arg-type]
    assert isinstance(error, BackendUnavailable) and error.reason == "database-internal-error"
    other = ora_exception(3113, "end-of-file on communication channel")
    assert oracle_errors.classify(other).reason == "connection-lost"


def test_image_binds_are_sorted_by_id() -> None:
    ids = ["img-9", "img-10", "img-1", "img-5"]
    pixels = np.arange(4 * 784, dtype=np.uint32).astype(np.uint8).reshape(4, 784)
    batch = ImageBatch("b-1", ids, pixels, np.array([1, 2, 3, -1], np.int16),
                       np.zeros(4, np.int64), [])
    binds = oracle_sql.image_binds(batch, range(4))
    assert [bind[0] for bind in binds] == sorted(ids)
    for bind in binds:  # each bind keeps its own row's content
        row = ids.index(bind[0])
        assert bind[1] == pixels[row].tobytes()
        assert bind[2] == (None if batch.labels[row] < 0 else int(batch.labels[row]))


def test_driver_error_class_alone_never_decides() -> None:
    """ORA-01536 is a plain DatabaseError, like a typo: only the code makes it a space problem."""
    assert type(ora_exception(1536)) is oracledb.DatabaseError
    assert type(ora_exception(904)) is oracledb.DatabaseError
    assert oracle_errors.classify(ora_exception(904)) == ErrorKind("fatal", "backend")
