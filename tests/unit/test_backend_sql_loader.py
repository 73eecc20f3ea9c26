"""The SQL file loader: statements by name, scripts with line numbers, comments never sent."""

from __future__ import annotations

import re

import pytest

from streamscore.backends.activations_sql import ACTIVATIONS, activation_sql
from streamscore.backends.sqlfiles import named_statements, parse_named, split_script, statement
from streamscore.errors import ConfigError

NAMED = """-- a header the loader ignores
-- name: insert_images
-- 1. images, idempotent on image_id
INSERT INTO images (image_id)
SELECT image_id, '--not a comment' FROM staging   -- cut: inline
ON CONFLICT DO NOTHING;

-- name: select_offsets
SELECT next_offset FROM consumer_offsets WHERE topic = :1
"""


def test_statements_are_found_by_name_with_their_file_line() -> None:
    found = parse_named(NAMED, "sql/x/q.sql")
    assert list(found) == ["insert_images", "select_offsets"]
    insert = found["insert_images"]
    assert insert.text.splitlines()[0] == "INSERT INTO images (image_id)"
    assert insert.line == 4 and insert.file_line(3) == 6  # "ON CONFLICT" is line 6 of the file
    assert not insert.text.endswith(";") and "cut: inline" not in insert.text
    assert "SELECT image_id, '--not a comment' FROM staging" in insert.text.splitlines()
    assert "-- 1. images" not in insert.text and "header" not in insert.text
    assert found["select_offsets"].line == 9


@pytest.mark.parametrize(("text", "fragment"), [
    ("-- name: a\nSELECT 1\n-- name: a\nSELECT 2\n", "named twice"),
    ("-- name: a\n-- only a comment\n", "is empty"),
    ("-- name: Bad-Name\nSELECT 1\n", "not a statement name"),
])
def test_malformed_files_are_config_errors(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        parse_named(text, "sql/x/bad.sql")


def test_an_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(ConfigError, match="did you mean 'upsert_offsets'"):
        statement("duckdb", "upsert_offset")


PLSQL = """-- header
CREATE OR REPLACE PACKAGE p AS
  -- a comment inside the unit
  PROCEDURE run;
END p;
/

-- the body
CREATE OR REPLACE PACKAGE BODY p AS
  PROCEDURE run IS
  BEGIN
    NULL;  -- nothing
  END run;
END p;
/
CREATE TABLE t (a NUMBER);
-- between
CREATE INDEX t_ix ON t (a);
"""


def test_scripts_keep_plsql_units_whole_and_lines_true() -> None:
    spec, body, table, index = split_script(PLSQL, "sql/oracle/p.sql")
    assert spec.line == 2 and body.line == 9 and table.line == 16 and index.line == 18
    assert spec.text.endswith("END p;") and body.text.endswith("END p;")
    # line 4 of the body as Oracle numbers it (NULL;) is line 12 of the file
    assert body.text.splitlines()[3].strip() == "NULL;  -- nothing" and body.file_line(4) == 12
    assert spec.text.splitlines()[1] == ""  # the comment is blanked, its line kept
    assert (table.text, index.text) == ("CREATE TABLE t (a NUMBER)", "CREATE INDEX t_ix ON t (a)")


def test_kinetica_schema_sends_no_comments_but_keeps_hints() -> None:
    from streamscore.backends.kinetica import tables

    for text in tables.schema_statements("s"):
        assert "--" not in text, text[:60]
    assert "/* KI_HINT_UPDATE_ON_EXISTING_PK */" in tables.sql("merge_predictions", "s")


@pytest.mark.parametrize("engine", ["duckdb", "postgres", "oracle", "kinetica"])
def test_shipped_statements_send_no_comment_lines(engine: str) -> None:
    statements = named_statements(engine)
    assert statements, engine
    for name, found in statements.items():
        assert name == found.name and found.file.startswith(f"sql/{engine}/")
        if not found.text.upper().rstrip().endswith("END;"):
            assert "--" not in found.text, name
        assert not re.search(r";\s*$", found.text) or found.text.rstrip().upper().endswith("END;"), name


@pytest.mark.parametrize("engine", ["duckdb", "postgres"])
def test_the_activations_of_the_pure_sql_pass_are_named_statements(engine: str) -> None:
    for activation in ACTIVATIONS:
        text = activation_sql(engine, activation)
        assert text.strip() and "--" not in text and ";" not in text, activation
    with pytest.raises(ConfigError, match="no SQL for activation 'gelu'"):
        activation_sql(engine, "gelu")
