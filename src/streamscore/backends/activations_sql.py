"""The activations as SQL expressions, for the pure-SQL forward passes (DuckDB's ``scorer=sql``
and the PostgreSQL benchmark): the statements ``activation_<name>`` of ``sql/<engine>/activations.sql``.
"""

from __future__ import annotations

from streamscore.backends.sqlfiles import sql
from streamscore.errors import ConfigError

#: the activations a pure-SQL pass can compute (a fixed list: the names are code, never user input)
ACTIVATIONS = ("sigmoid", "relu", "tanh", "identity", "softmax")


def activation_sql(engine: str, activation: str) -> str:
    """The SQL expression of ``activation`` over ``z`` (and ``zsoft``) in ``engine``'s dialect."""
    if activation not in ACTIVATIONS:
        raise ConfigError(f"no SQL for activation {activation!r}; known: {', '.join(ACTIVATIONS)}")
    return sql(engine, f"activation_{activation}")
