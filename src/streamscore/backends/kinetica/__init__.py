"""Kinetica: the backend (backend.py), tables and rows (tables.py), UDF procs (procs.py),
in-database training (train.py), error classification (errors.py), client settings (client.py). SQL: sql/kinetica/."""

from streamscore.backends.kinetica.backend import KineticaBackend

__all__ = ["KineticaBackend"]
