"""The Oracle backend's PL/SQL and SQL parsed by an independent grammar (issue 16 item 9).

The grammar is ANTLR's grammars-v4 PlSql grammar, generated and published on npm by the
package antlr4ts-sql (pinned with its runtime in tests/plsql/package.json and
package-lock.json; `npm ci --prefix tests/plsql` installs it, .ci/run does). Nothing of the
grammar is copied into this repository. tests/plsql/parse_plsql.js parses each unit as the
backend sends it (split by streamscore.backends.sqlfiles, as at run time), maps the grammar's
lines back to the file, and names the grammar rule each top-level statement matched. The tests
compare those with what the unit is: the grammar's script rule takes stray words as procedure
calls, so "no error" alone would let garbage after a package body through.

Units: the package spec and body (mnist_scorer.sql), the ONNX loading block (onnx.sql), the
user script's PL/SQL block, CREATE USER and both GRANTs (00_create_user.sql, its SQL*Plus
commands blanked and its substitution variables filled in as SQL*Plus would; the optional
CREATE MINING MODEL grant parsed uncommented), every DDL statement of schema.sql and every
named statement (the ONNX INSERT rendered by onnx_scorer.score_statement with 3 of its 784
pixel columns: the same grammar path, 1 s instead of 2 minutes).

GRAMMAR_GAPS lists, with the reason, what the grammar rejects and Oracle accepts (also in
docs/oracle.md, "Tests"); an entry that no longer occurs fails, so the list stays true.
Without Node.js or the npm package the tests skip, naming the install. About 15 s of CPU
(the grammar is large: loading it takes 1 s, the package body about 3 s).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pytest

from streamscore.backends.base import ModelRef
from streamscore.backends.oracle import onnx_scorer
from streamscore.backends.oracle import statements as oracle_sql
from streamscore.backends.sqlfiles import Statement, named_statements, read_sql, script

TOOL = Path(__file__).resolve().parents[1] / "plsql"
PARSER = TOOL / "parse_plsql.js"
INSTALL = "npm ci --prefix tests/plsql"

#: errors the grammar reports on SQL that Oracle accepts: (unit, message start) -> why
GRAMMAR_GAPS: dict[tuple[str, str], str] = {
    ("native_compilation", "mismatched input ''NATIVE''"):
        "the grammar's ALTER SESSION takes no quoted parameter value; Oracle takes one for "
        "String parameters such as PLSQL_CODE_TYPE (the SQL Reference's own example "
        "ALTER SESSION SET NLS_DATE_FORMAT = 'YYYY MM DD HH24:MI:SS' fails in the grammar too: "
        "test_the_native_compilation_gap_is_the_grammars)",
}

#: the grammar rule a unit's statement must match, by how the statement starts
KINDS = (
    (r"CREATE\s+(OR\s+REPLACE\s+)?PACKAGE\s+BODY\b", "create_package_body"),
    (r"CREATE\s+(OR\s+REPLACE\s+)?PACKAGE\b", "create_package"),
    (r"CREATE\s+(GLOBAL\s+TEMPORARY\s+)?TABLE\b", "create_table"),
    (r"CREATE\s+(UNIQUE\s+)?INDEX\b", "create_index"),
    (r"CREATE\s+USER\b", "create_user"),
    (r"GRANT\b", "grant_statement"),
    (r"(BEGIN|DECLARE)\b", "anonymous_block"),
    (r"(SELECT|INSERT|MERGE|UPDATE|DELETE|WITH)\b", "data_manipulation_language_statements"),
    (r"ALTER\s+SESSION\b", "alter_session"),
)

#: SQL*Plus commands: the client runs them, the server never sees them
SQLPLUS_COMMAND = re.compile(r"^\s*(SET|WHENEVER|DEFINE|UNDEFINE|ACCEPT|PROMPT)\b", re.IGNORECASE)
#: 00_create_user.sql's substitution variables, as SQL*Plus fills them in (&1 is app_user)
SUBSTITUTIONS = {"&app_password": "not_a_password", "&app_user": "streamscore_app"}


@dataclass(frozen=True)
class Unit:
    """What parse_plsql.js reads: a text and the file line its first line is on."""

    name: str
    file: str
    line: int
    text: str


def kind(text: str) -> str:
    for pattern, rule in KINDS:
        if re.match(pattern, text.lstrip(), re.IGNORECASE):
            return rule
    raise AssertionError(f"no grammar rule known for {text[:60]!r}")


def sql_unit(name: str, statement: Statement, text: str | None = None) -> Unit:
    """A plain SQL statement with the ";" a script ends it with (the backend strips it: Oracle
    refuses it over the driver; this grammar parses scripts, where DDL must end with it)."""
    text = statement.text if text is None else text
    return Unit(name, statement.file, statement.line, text if kind(text) == "anonymous_block" else text + ";")


def package_units() -> list[Unit]:
    spec, body = script("oracle", oracle_sql.PACKAGE_FILE)
    return [Unit("package spec", spec.file, spec.line, spec.text),
            Unit("package body", body.file, body.line, body.text)]


def user_script_unit() -> Unit:
    """00_create_user.sql as SQL*Plus sends it: commands blanked (lines keep their numbers)."""
    lines = []
    for line in read_sql("oracle", "00_create_user.sql").splitlines():
        line = "" if SQLPLUS_COMMAND.match(line) else line
        if line.startswith("-- GRANT CREATE MINING MODEL"):
            line = line[3:]  # the optional grant, as a DBA enabling ONNX runs it
        for variable, value in SUBSTITUTIONS.items():
            line = line.replace(variable, value)
        lines.append("" if line.lstrip().startswith("--") else line)
    return Unit("user script", "sql/oracle/00_create_user.sql", 1, "\n".join(lines))


def onnx_statement() -> str:
    with pytest.MonkeyPatch.context() as patch:
        names = onnx_scorer.attribute_names()[:3]
        patch.setattr(onnx_scorer, "attribute_names", lambda: names)
        return onnx_scorer.score_statement(ModelRef("mnist", 2))


def shipped_units() -> dict[str, tuple[Unit, list[str]]]:
    """Every unit with the grammar rules its top-level statements must match, by name."""
    units: dict[str, tuple[Unit, list[str]]] = {}
    for unit in package_units():
        units[unit.name] = (unit, [kind(unit.text)])
    user = user_script_unit()
    units[user.name] = (user, ["anonymous_block", "create_user", "grant_statement", "grant_statement"])
    for statement in script("oracle", "schema.sql"):
        unit = sql_unit(f"schema.sql statement {statement.name}", statement)
        units[unit.name] = (unit, [kind(unit.text)])
    for name, statement in named_statements("oracle").items():
        unit = sql_unit(name, statement, onnx_statement() if name == "onnx_score_staged" else None)
        units[name] = (unit, [kind(unit.text)])
    return units


@dataclass(frozen=True)
class Break:
    """A unit with one deliberate syntax error: ``old`` became ``new`` on file line ``line``."""

    unit: Unit
    line: int
    old: str


def broken(unit: Unit, name: str, old: str, new: str) -> Break:
    lines = unit.text.splitlines()
    index = next(i for i, line in enumerate(lines) if old in line)
    lines[index] = lines[index].replace(old, new, 1)
    return Break(Unit(name, unit.file, unit.line, "\n".join(lines)), unit.line + index, old)


def run_parser(units: list[Unit], *args: str) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    if node is None:
        pytest.skip(f"Node.js not found: install it (apt-get install nodejs npm), then {INSTALL}")
    if not (TOOL / "node_modules" / "antlr4ts-sql").is_dir():
        pytest.skip(f"the PL/SQL grammar (npm package antlr4ts-sql) is not installed: {INSTALL}")
    stdin = json.dumps([asdict(unit) for unit in units])
    done = subprocess.run([node, str(PARSER), *args], input=stdin, capture_output=True, text=True,
                          timeout=900, check=False)
    assert done.returncode in (0, 1), f"parse_plsql.js failed ({done.returncode}): {done.stderr}"
    return done


@pytest.fixture(scope="module")
def expected() -> dict[str, tuple[Unit, list[str]]]:
    return shipped_units()


@pytest.fixture(scope="module")
def breaks(expected: dict[str, tuple[Unit, list[str]]]) -> dict[str, Break]:
    spec, body = expected["package spec"][0], expected["package body"][0]
    return {
        # a realistic slip: "END;" closing an IF (Oracle: PLS-00103), on a line of the body
        "broken body": broken(body, "broken body", "END IF;", "END;"),
        "broken spec": broken(spec, "broken spec", "CONSTANT PLS_INTEGER :=", "CONSTANT PLS_INTEGER ="),
    }


@pytest.fixture(scope="module")
def parsed(expected: dict[str, tuple[Unit, list[str]]],
           breaks: dict[str, Break]) -> dict[str, dict[str, Any]]:
    """One parser run (the grammar takes a second to load) over every unit, by name."""
    probe = Unit("gap probe", "probe.sql", 1, "ALTER SESSION SET NLS_DATE_FORMAT = 'YYYY MM DD HH24:MI:SS';")
    units = [unit for unit, _ in expected.values()] + [b.unit for b in breaks.values()] + [probe]
    results: list[dict[str, Any]] = json.loads(run_parser(units, "--json").stdout)
    return {result["name"]: result for result in results}


def gap(unit: str, message: str) -> tuple[str, str] | None:
    return next((key for key in GRAMMAR_GAPS if key[0] == unit and message.startswith(key[1])), None)


def test_every_shipped_unit_parses_as_what_it_is(expected: dict[str, tuple[Unit, list[str]]],
                                                 parsed: dict[str, dict[str, Any]]) -> None:
    assert {"package spec", "package body", "user script", "onnx_load_model"} <= set(expected)
    errors = [f"{e['file']}:{e['line']}:{e['column']}: [{name}] {e['message']}"
              for name in expected for e in parsed[name]["errors"] if gap(name, e["message"]) is None]
    if errors:
        pytest.fail("the PL/SQL grammar rejects:\n" + "\n".join(errors), pytrace=False)
    for name, (_unit, rules) in expected.items():
        if not any(gap(name, e["message"]) for e in parsed[name]["errors"]):
            assert parsed[name]["statements"] == rules, name


def test_every_grammar_gap_still_occurs(parsed: dict[str, dict[str, Any]]) -> None:
    seen = {gap(name, e["message"]) for name, result in parsed.items() for e in result["errors"]}
    stale = set(GRAMMAR_GAPS) - seen
    assert not stale, f"the grammar accepts these now: remove them from GRAMMAR_GAPS and docs/oracle.md: {stale}"


def test_the_native_compilation_gap_is_the_grammars(parsed: dict[str, dict[str, Any]]) -> None:
    errors = parsed["gap probe"]["errors"]
    assert errors and errors[0]["message"].startswith("mismatched input ''YYYY MM DD HH24:MI:SS''")


@pytest.mark.parametrize("name", ["broken body", "broken spec"])
def test_a_syntax_error_is_reported_on_its_file_line(name: str, breaks: dict[str, Break],
                                                     parsed: dict[str, dict[str, Any]]) -> None:
    wrong = breaks[name]
    errors = parsed[name]["errors"]
    assert errors, f"{name}: the grammar accepted a broken unit"
    assert (errors[0]["file"], errors[0]["line"]) == (wrong.unit.file, wrong.line), errors[0]
    # that line of the file is the one broken (the unit's own numbering starts elsewhere)
    assert wrong.old in read_sql("oracle", oracle_sql.PACKAGE_FILE).splitlines()[wrong.line - 1]
    assert wrong.line > wrong.unit.line > 1


def test_the_command_line_prints_file_lines(tmp_path: Path) -> None:
    path = tmp_path / "broken.sql"
    path.write_text("BEGIN\n  IF 1 = 1 THEN\n    NULL;\n  ELSEIF 2 = 2 THEN\n    NULL;\n  END IF;\nEND;\n/\n")
    done = run_parser([], str(path))
    assert done.returncode == 1
    assert done.stdout.startswith(f"{path}:4:10: [{path}] mismatched input '2'"), done.stdout
