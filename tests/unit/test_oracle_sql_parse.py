"""Every SQL statement the Oracle backend sends, parsed by sqlglot's Oracle dialect.

Named statements (sql/oracle/queries.sql) and the schema's DDL must parse, reference only the
tables and columns schema.sql creates (or the data dictionary), and number their positional
binds 1..n without a gap (ORA-01008 otherwise). The PL/SQL package is not SQL: its units are
checked by test_oracle_backend.py and test_oracle_utl_nla.py, and parsed, with these
statements, by an independent PL/SQL grammar (ANTLR grammars-v4 PlSql) in
test_oracle_plsql_grammar.py. Part of issue 16 item 9.
"""

from __future__ import annotations

import re

import pytest

from streamscore.backends.sqlfiles import named_statements, read_sql, split_statements

sqlglot = pytest.importorskip("sqlglot", reason="pip install sqlglot (in the dev extra)")
exp = pytest.importorskip("sqlglot.expressions")

#: statements sqlglot does not model: ALTER SESSION (an opaque Command), a PL/SQL block
OPAQUE = {"native_compilation", "onnx_load_model"}
#: package constants (UTL_RAW.LITTLE_ENDIAN) look like qualified columns to sqlglot
PACKAGES = {"utl_raw"}
#: data-dictionary views the statements read
DICTIONARY = {"dual", "user_objects", "user_errors", "user_source",
                                                                      "user_mining_models"}


def parse(text: str) -> object:
    # python-oracledb's positional binds (:1) are the same grammar position as named ones
    return sqlglot.parse_one(re.sub(r":(\d+)", r":b\1", text), dialect="oracle",
                             error_level=sqlglot.ErrorLevel.RAISE)


def schema_columns() -> dict[str, set[str]]:
    columns: dict[str, set[str]] = {}
    for text in split_statements(read_sql("oracle", "schema.sql")):
        tree = parse(text)
        assert isinstance(tree, exp.Create), text[:60]
        if str(tree.args.get("kind", "")).upper() == "TABLE":
            table = tree.find(exp.Table)
            columns[table.name.lower()] = {c.name.lower() for c in tree.find_all(exp.ColumnDef)}
    return columns


def test_schema_statements_parse_as_oracle_ddl() -> None:
    columns = schema_columns()
    assert {"mnist_images", "mnist_batch_ids", "mnist_batch_replays", "mnist_predictions"} <= set(columns)
    assert "pixels" in columns["mnist_batch_replays"]


def statement_problems(name: str, text: str, columns: dict[str, set[str]]) -> list[str]:
    """Why a statement would fail on Oracle (empty: none found); raises ParseError on bad syntax."""
    if name in OPAQUE:
        return []
    tree = parse(text)
    if isinstance(tree, exp.Command):
        return ["not parsed as SQL"]
    problems = []
    tables = {table.name.lower() for table in tree.find_all(exp.Table)}
    if not tables <= set(columns) | DICTIONARY:
        problems.append(f"unknown tables {sorted(tables - set(columns) - DICTIONARY)}")
    binds = sorted(int(p.name[1:]) for p in tree.find_all(exp.Placeholder))
    if binds != list(range(1, len(binds) + 1)):
        problems.append(f"binds {binds} (ORA-01008 when one is missing)")
    if isinstance(tree, exp.Insert):
        inserted = {column.name.lower() for column in tree.this.expressions}
        problems += [f"no column {c}" for c in sorted(inserted - columns.get(tree.this.this.name.lower(), set()))]
    known = set().union(*(columns.get(table, set()) for table in tables))
    known |= {alias.alias.lower() for alias in tree.find_all(exp.Alias)}  # an inline view's columns
    if tables <= set(columns):  # dictionary views: their columns are not modelled here
        problems += [f"no column {column.name} in {sorted(tables)}" for column in tree.find_all(exp.Column)
                     if column.name.lower() not in known and column.table.lower() not in PACKAGES]
    return problems


#: Oracle's mining functions, which sqlglot's grammar does not have
MINING_CALL = re.compile(r"PREDICTION(?:_PROBABILITY)?\(\{model\}(?:, \d)? USING \{using\}\)")


def without_mining_calls(text: str) -> str:
    """onnx_score_staged with each PREDICTION… call as NULL and the generated columns filled in."""
    attributes = ", ".join(f"TO_NUMBER(RAWTOHEX(UTL_RAW.SUBSTR(i.pixels, {k + 1}, 1)), 'XX') AS P{k}"
                           for k in range(3))
    return MINING_CALL.sub("NULL", text).replace("{attributes}", attributes)


def test_every_named_statement_parses_and_uses_known_tables_and_columns() -> None:
    columns = schema_columns()
    statements = named_statements("oracle")
    assert {"insert_image", "select_conflicts", "select_predictions", "onnx_score_staged"} <= set(statements)
    for name, statement in statements.items():
        text = without_mining_calls(statement.text) if name == "onnx_score_staged" else statement.text
        assert "{" not in text, name
        assert statement_problems(name, text, columns) == [], name


def test_the_onnx_statement_asks_for_every_class_in_order() -> None:
    text = named_statements("oracle")["onnx_score_staged"].text
    calls = MINING_CALL.findall(text)
    assert calls[0] == "PREDICTION({model} USING {using})"
    assert calls[1:] == [f"PREDICTION_PROBABILITY({{model}}, {k} USING {{using}})" for k in range(10)]


def test_the_sql_check_can_fail() -> None:
    with pytest.raises(sqlglot.errors.ParseError):
        parse("SELECT image_id FROM mnist_images WHERE image_id = :1 AND")
    with pytest.raises(sqlglot.errors.ParseError):
        parse("INSERT INTO mnist_images (image_id, pixels VALUES (:1, :2)")



@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("INSERT INTO mnist_images (image_id, pixelz) VALUES (:1, :2)", "no column pixelz"),
        ("SELECT sha256 FROM model_versions WHERE model_name = :1 AND model_version = :3", "binds [1, 3]"),
        ("SELECT layer_cnt FROM model_versions WHERE model_name = :1", "no column layer_cnt"),
        ("SELECT image_id FROM mnist_batch WHERE image_id = :1", "unknown tables ['mnist_batch']"),
    ],
)
def test_the_checks_find_wrong_names_and_binds(text: str, problem: str) -> None:
    assert any(problem in found for found in statement_problems("x", text, schema_columns()))
