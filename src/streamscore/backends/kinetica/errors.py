"""Classify gpudb errors: connection failures (also wrapped ones) are retriable, the rest fatal.

Kinetica answers a bad row with the same exception as a schema fault, so nothing is "data"
here: the backend validates rows before it sends them (BackendDataError). Refused credentials
are fatal with reason ``backend-auth``.
"""

from __future__ import annotations

import gpudb

from streamscore.errors import ErrorKind

RETRIABLE_ERRORS: tuple[type[BaseException], ...] = (
    gpudb.GPUdbConnectionException,
    gpudb.GPUdbHAUnavailableException,
    gpudb.GPUdbExitException,
    gpudb.GPUdbFailoverDisabledException,
    ConnectionError,
    TimeoutError,
)


def connection_failure(exc: BaseException) -> bool:
    """True when a gpudb error (or one it wraps) means the server was not reached."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, RETRIABLE_ERRORS):
            return True
        if isinstance(current, gpudb.GPUdbException) and not isinstance(
            current, gpudb.GPUdbUnauthorizedAccessException
        ) and current.is_connection_failure():
            return True
        current = current.__cause__ or current.__context__
    # InsertionException keeps only the text of what it wraps
    return isinstance(exc, gpudb.InsertionException) and gpudb.GPUdbException(
        str(exc)).is_connection_failure()


def classify(exc: BaseException) -> ErrorKind:
    if connection_failure(exc):
        return ErrorKind("retriable", "connection-lost", 2.0)
    if isinstance(exc, gpudb.GPUdbUnauthorizedAccessException):
        return ErrorKind("fatal", "backend-auth")
    return ErrorKind("fatal", "backend")
