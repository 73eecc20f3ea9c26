"""Backends chosen by URL scheme. Importing this package imports no database driver."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Mapping
from functools import cache
from typing import TYPE_CHECKING

from streamscore.backends.base import Backend, ImageBatch, ModelRef, PurgeReport, ScoredBatch, SourceOffset
from streamscore.backends.url import BackendURL, mask_url
from streamscore.errors import ConfigError, MissingDependencyError

if TYPE_CHECKING:
    from streamscore.shared.config import Settings

__all__ = [
    "BACKENDS", "Backend", "BackendURL", "ImageBatch", "ModelRef", "PurgeReport", "ScoredBatch", "SourceOffset",
    "mask_url", "open_backend", "open_configured_backend", "option_defaults", "resolve_backend",
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


def open_backend(url: str, *, defaults: Mapping[str, Mapping[str, str]] | None = None) -> Backend:
    """A backend (not yet connected) for a URL such as duckdb:///scores.db.

    :param defaults: settings-wide values of URL options per backend name, used when the URL does
        not set them (e.g. ``{"duckdb": {"scorer": "sql"}}`` from STREAMSCORE_DUCKDB_SCORER applies
        to DuckDB URLs only: Oracle's ``scorer`` takes other values). Options written in the URL
        itself are checked strictly: an unknown one is a ConfigError listing the valid ones.
    """
    parsed = BackendURL.parse(url)
    backend_class = resolve_backend(parsed.scheme)
    own = (defaults or {}).get(backend_class.name, {})
    extra = {k: v for k, v in own.items() if k in backend_class.url_options and k not in parsed.options}
    if extra:
        parsed = parsed.with_options(extra)
    return backend_class(parsed)


def open_configured_backend(settings: Settings, url: str | None = None) -> Backend:
    """The backend of ``url`` (default: settings.backend_url) with the settings' option defaults."""
    return open_backend(url or settings.backend_url, defaults=option_defaults(settings))


def option_defaults(settings: Settings) -> dict[str, dict[str, str]]:
    """URL option defaults from settings, per backend name (STREAMSCORE_DUCKDB_SCORER → duckdb ``scorer``)."""
    return {"duckdb": {"scorer": settings.duckdb_scorer}}
