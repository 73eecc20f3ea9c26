"""Backends chosen by URL scheme. Importing this package imports no database driver."""

from __future__ import annotations

import difflib
import importlib
from functools import cache

from streamscore.backends.base import Backend, ImageBatch, ModelRef, ScoredBatch, SourceOffset
from streamscore.backends.url import BackendURL, mask_url
from streamscore.errors import ConfigError, MissingDependencyError

__all__ = [
    "BACKENDS", "Backend", "BackendURL", "ImageBatch", "ModelRef", "ScoredBatch", "SourceOffset",
    "mask_url", "open_backend", "resolve_backend",
]

#: scheme → "module:Class"; a backend module is imported only when its scheme is used
BACKENDS: dict[str, str] = {
    "duckdb": "streamscore.backends.duckdb:DuckDBBackend",
    "postgresql": "streamscore.backends.postgres:PostgresBackend",
    "postgres": "streamscore.backends.postgres:PostgresBackend",
    "oracle": "streamscore.backends.oracle:OracleBackend",
    "kinetica": "streamscore.backends.kinetica:KineticaBackend",
}

#: driver module → pip extra that installs it
DRIVER_EXTRAS = {"psycopg": "postgres", "oracledb": "oracle", "gpudb": "kinetica", "duckdb": ""}


@cache
def resolve_backend(scheme: str) -> type[Backend]:
    """The Backend class for a URL scheme (imported lazily, cached)."""
    target = BACKENDS.get(scheme.lower())
    if target is None:
        close = difflib.get_close_matches(scheme.lower(), BACKENDS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"unknown backend scheme {scheme!r}; known: {', '.join(sorted(BACKENDS))}.{hint}"
        )
    module_name, class_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing in DRIVER_EXTRAS:
            extra = DRIVER_EXTRAS[missing]
            fix = f"pip install 'streamscore[{extra}]'" if extra else f"pip install {missing}"
            raise MissingDependencyError(
                f"the {scheme} backend needs the {missing} driver, which is not installed: {fix}"
            ) from None
        raise
    backend: type[Backend] = getattr(module, class_name)
    return backend


def open_backend(url: str, **options: object) -> Backend:
    """A backend (not yet connected) for a URL such as duckdb:///scores.db."""
    parsed = BackendURL.parse(url)
    return resolve_backend(parsed.scheme)(parsed, **options)
