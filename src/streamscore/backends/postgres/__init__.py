"""PostgreSQL: the backend (backend.py), statements and row conversions (statements.py), error
classification by SQLSTATE (errors.py) and its engine benchmarks (bench.py). SQL: sql/postgres/."""

from streamscore.backends.postgres.backend import PostgresBackend

__all__ = ["PostgresBackend"]
