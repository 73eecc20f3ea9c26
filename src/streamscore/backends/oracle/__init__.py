"""Oracle: the backend (backend.py), binds and row conversions (statements.py) and error
classification by ORA/DPY code (errors.py). SQL and PL/SQL: sql/oracle/."""

from streamscore.backends.oracle.backend import OracleBackend

__all__ = ["OracleBackend"]
