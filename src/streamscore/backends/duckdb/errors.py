"""Classify DuckDB errors: DuckDB's exception classes say what happened, so classes suffice.

* retriable: a locked file (another process writes it) or an I/O hiccup (IOException), a
  transaction conflict (TransactionException);
* data: the rows were refused: constraint, conversion, out-of-range values;
* fatal: everything else (catalog, binder, syntax errors), and I/O errors that waiting cannot
  fix: the path is a folder, permission denied, a read-only file system, a file that is not a
  DuckDB database.
"""

from __future__ import annotations

import duckdb

from streamscore.errors import ErrorKind

RETRIABLE: dict[type[BaseException], tuple[str, float]] = {
    duckdb.IOException: ("database-locked", 1.0),
    duckdb.TransactionException: ("transaction-conflict", 0.2),
}
DATA_ERRORS: tuple[type[BaseException], ...] = (
    duckdb.ConstraintException, duckdb.ConversionException, duckdb.OutOfRangeException,
)


#: words of an IOException that mean "fix the path", not "wait for the lock"
PERMANENT_IO = ("is a directory", "permission denied", "read-only file system", "not a valid duckdb database")


def classify(exc: BaseException) -> ErrorKind:
    if isinstance(exc, duckdb.IOException) and any(words in str(exc).lower() for words in PERMANENT_IO):
        return ErrorKind("fatal", "database-path")
    for error_class, (reason, delay) in RETRIABLE.items():
        if isinstance(exc, error_class):
            return ErrorKind("retriable", reason, delay)
    if isinstance(exc, DATA_ERRORS):
        return ErrorKind("data", "db-rejected")
    return ErrorKind("fatal", "backend")
