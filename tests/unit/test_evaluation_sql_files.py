"""sql/<engine>/evaluation.sql: the same statements on every engine, the same columns in the same order,
written to be pasted into the engine's console as they are (no binds, no substitution).

Parsed by sqlglot in the engine's dialect (Kinetica has none there: its statements are parsed as
generic SQL and run on the stand-in by tests/contract/test_evaluation_sql.py; Oracle's also pass
tests/unit/test_oracle_sql_parse.py, which checks their tables and columns against schema.sql).
"""

from __future__ import annotations

import re

import pytest

from streamscore.backends.evaluation import STATEMENTS
from streamscore.backends.sqlfiles import named_statements, parse_named, read_sql

sqlglot = pytest.importorskip("sqlglot", reason="pip install sqlglot (in the dev extra)")
exp = pytest.importorskip("sqlglot.expressions")

DIALECTS = {"duckdb": "duckdb", "postgres": "postgres", "oracle": "oracle", "kinetica": None}


@pytest.mark.parametrize("engine", sorted(DIALECTS))
def test_every_engine_selects_the_same_columns_in_order(engine: str) -> None:
    statements = parse_named(read_sql(engine, "evaluation.sql"), f"sql/{engine}/evaluation.sql")
    assert set(STATEMENTS) <= set(statements)
    for name, columns in STATEMENTS.items():
        text = statements[name].text
        assert not re.search(r"[{}]|\$\d|%\(|%s|:\d|\?", text), f"{engine} {name} is not console-ready"
        tree = sqlglot.parse_one(text, dialect=DIALECTS[engine], error_level=sqlglot.ErrorLevel.RAISE)
        assert isinstance(tree, exp.Select), name
        assert tuple(select.alias_or_name.lower() for select in tree.expressions) == columns, f"{engine} {name}"
        assert "shadow" in text, f"{engine} {name} must leave shadow predictions out"


def test_the_loader_finds_them_by_name() -> None:
    for engine in DIALECTS:
        assert set(STATEMENTS) <= set(named_statements(engine))
