"""A stand-in for python-oracledb's connection and cursor, and helpers, for the Oracle unit tests.

A fake of the driver's surface the backend uses (execute/executemany/callproc/callfunc, batch
errors, commit/rollback), recording what it is asked; errors are the driver's own objects
(``oracledb.errors._Error``), so codes and classes are real.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from oracledb import errors as oracledb_errors

from streamscore.backends import ImageBatch, SourceOffset
from streamscore.backends.oracle import statements as oracle_sql
from streamscore.model.artifact import ModelArtifact


def ora(code: int, text: str = "error", offset: int = 0) -> oracledb_errors._Error:
    return oracledb_errors._Error(f"ORA-{code:05d}: {text}", code=code, offset=offset)


def ora_exception(code: int, text: str = "error") -> BaseException:
    error = ora(code, text)
    exc: BaseException = error.exc_type(error)
    return exc


def dpy_exception(number: int, **args: str) -> BaseException:
    error = oracledb_errors._Error(oracledb_errors._get_error_text(number, **args))
    exc: BaseException = error.exc_type(error)
    return exc


def make_batch(ids: list[str], batch_id: str = "b-1") -> ImageBatch:
    n = len(ids)
    pixels = np.arange(n * 784, dtype=np.int64).reshape(n, 784).astype(np.uint8)
    labels = np.array([i % 10 if i % 3 else -1 for i in range(n)], dtype=np.int16)
    sources = [SourceOffset("mnist.images", i % 2, 100 + i) for i in range(n)]
    offsets = {("mnist.images", 0): 200, ("mnist.images", 1): 201}
    return ImageBatch(batch_id, ids, pixels, labels, np.full(n, 1_700_000_000_000, np.int64),
                      sources, offsets)


def rows_from_binds(artifact: ModelArtifact) -> tuple[tuple[Any, ...], list[tuple[Any, ...]]]:
    """What SELECT_MODEL / SELECT_LAYERS return for rows written with model_binds."""
    model, layers = oracle_sql.model_binds(artifact)
    model_row = (model[2], model[3], model[4], model[5], model[6])
    layer_rows = [(layer[2], layer[3], layer[4], layer[5], layer[6], layer[7]) for layer in layers]
    return model_row, layer_rows


def prediction_rows(ids: list[str]) -> list[tuple[Any, ...]]:
    probs = np.full(10, 0.1, np.float32).tobytes()
    return [(image_id, 3, probs) for image_id in ids]


class FakeCursor:
    def __init__(self, conn: FakeConnection) -> None:
        self.conn = conn
        self.rows: list[tuple[Any, ...]] = []
        self.batch_errors: list[Any] = []

    def __enter__(self) -> FakeCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def setinputsizes(self, *args: Any) -> None:
        self.conn.log.append(("setinputsizes", len(args)))

    def execute(self, sql: str, params: Any = None, **kwargs: Any) -> None:
        first = " ".join(sql.split()[:3])
        self.conn.log.append(("execute", first))
        error = self.conn.fail_on.pop(first, None)
        if error is not None:
            raise error
        lookup = self.conn.lookups.get(first)
        self.rows = lookup(params) if lookup is not None else self.conn.results.get(first, [])

    def executemany(self, sql: str, params: list[Any], batcherrors: bool = False) -> None:
        target = sql.split()[2]
        self.conn.log.append(("executemany", target, batcherrors))
        self.conn.binds[target] = params
        self.conn.bind_history.setdefault(target, []).append(params)
        if target in self.conn.sticky_batch_errors:
            self.batch_errors = self.conn.batch_errors.get(target, [])
        else:
            self.batch_errors = self.conn.batch_errors.pop(target, [])

    def getbatcherrors(self) -> list[Any]:
        return self.batch_errors

    def callproc(self, name: str, params: list[Any]) -> None:
        self.conn.log.append(("callproc", name))
        self.conn.proc_args.append(list(params))
        if self.conn.callproc_errors:
            raise self.conn.callproc_errors.pop(0)

    def callfunc(self, name: str, return_type: Any, params: Any = None) -> Any:
        self.conn.log.append(("callfunc", name))
        return "batches=1 images=2"

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self.rows

    def fetchone(self) -> tuple[Any, ...] | None:
        return self.rows[0] if self.rows else None


class FakeConnection:
    def __init__(self) -> None:
        self.log: list[tuple[Any, ...]] = []
        self.results: dict[str, list[tuple[Any, ...]]] = {}
        self.lookups: dict[str, Any] = {}  # statement start → rows computed from the binds
        self.fail_on: dict[str, BaseException] = {}
        self.batch_errors: dict[str, list[Any]] = {}
        self.sticky_batch_errors: set[str] = set()  # same errors on every executemany
        self.bind_history: dict[str, list[Any]] = {}
        self.callproc_errors: list[BaseException] = []
        self.proc_args: list[list[Any]] = []
        self.binds: dict[str, Any] = {}
        self.call_timeout = 0
        self.module = ""

    def cursor(self) -> FakeCursor:
        return FakeCursor(self)

    def commit(self) -> None:
        self.log.append(("commit",))

    def rollback(self) -> None:
        self.log.append(("rollback",))

    def close(self) -> None:
        self.log.append(("close",))
