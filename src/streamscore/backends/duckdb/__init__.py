"""Embedded DuckDB: the backend (backend.py), its two in-database forward passes (scoring.py)
and its error classification (errors.py). Statements: sql/duckdb/."""

from streamscore.backends.duckdb.backend import DuckDBBackend

__all__ = ["DuckDBBackend"]
