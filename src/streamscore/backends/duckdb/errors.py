"""Classify DuckDB errors: DuckDB's exception classes say what happened, so classes suffice.

* retriable: a locked file (another process writes it) or an I/O hiccup (IOException), a
  transaction conflict (TransactionException);
* data: the rows were refused: constraint, conversion, out-of-range values;
* fatal: everything else (catalog, binder, syntax errors).
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


def classify(exc: BaseException) -> ErrorKind:
    for error_class, (reason, delay) in RETRIABLE.items():
        if isinstance(exc, error_class):
            return ErrorKind("retriable", reason, delay)
    if isinstance(exc, DATA_ERRORS):
        return ErrorKind("data", "db-rejected")
    return ErrorKind("fatal", "backend")
