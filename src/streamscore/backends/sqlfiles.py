"""The SQL the engines run, read from the plain files under ``sql/<engine>/`` that ship in the package.

Two kinds of file:

* **named statements** (the yesql/aiosql convention): a line ``-- name: insert_images`` starts
  the statement ``insert_images``, which runs to the next name line. Every statement an engine
  runs is looked up by that name with :func:`statement`, never by its position in a file.
* **scripts** (schema DDL, the Oracle package): run whole, statement after statement, with
  :func:`script`. A lone ``/`` line ends a chunk; a chunk that starts a PL/SQL unit is one
  statement, other chunks are split on ``;`` at the end of a line.

``--`` comments never reach the server in plain SQL (some drivers and servers mishandle them):
whole-line ones are blanked, not removed, so every line keeps its number, trailing ones cut off.
PL/SQL units and function bodies keep their inline comments (the server compiles them). Each :class:`Statement` records
the file and the line it starts on, so an error the server reports at line n of a statement
(a PL/SQL compile error) is line ``statement.file_line(n)`` of the file.

Only identifiers are ever substituted into these files; values are always bind variables.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

from streamscore.errors import ConfigError

#: a line holding only "/" ends a PL/SQL block (SQL*Plus convention)
_SLASH_LINE = re.compile(r"^\s*/\s*$")
_NAME_LINE = re.compile(r"^--\s*name:\s*(?P<name>\S+)\s*$")
_VALID_NAME = re.compile(r"[a-z_][a-z0-9_]*")
_PLSQL_START = re.compile(
    r"^\s*(BEGIN|DECLARE|CREATE\s+(OR\s+REPLACE\s+)?(EDITIONABLE\s+)?"
    r"(PACKAGE|PROCEDURE|FUNCTION|TRIGGER|TYPE))\b",
    re.IGNORECASE,
)
_STATEMENT_END = re.compile(r";[ \t]*$")


@dataclass(frozen=True)
class Statement:
    """One statement of a SQL file: its text (comment lines blanked) and where it starts."""

    name: str
    text: str
    file: str  # e.g. "sql/oracle/queries.sql"
    line: int  # line of the file the text's first line is on (1-based)

    def file_line(self, line: int) -> int:
        """The file line of line ``line`` (1-based) of this statement."""
        return self.line + line - 1

    def __str__(self) -> str:
        return self.text


@cache
def read_sql(engine: str, name: str) -> str:
    """The text of ``sql/<engine>/<name>``."""
    path = resources.files("streamscore") / "sql" / engine / name
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"SQL file sql/{engine}/{name} is missing from the installation") from None


def _blank_comments(lines: list[str]) -> list[str]:
    return ["" if line.lstrip().startswith("--") else line for line in lines]


def _without_trailing_comment(line: str) -> str:
    """``line`` up to a ``--`` comment outside '…' strings and "…" identifiers."""
    quote = ""
    for index, char in enumerate(line):
        if quote:
            quote = "" if char == quote else quote
        elif char in ("'", '"'):
            quote = char
        elif line.startswith("--", index):
            return line[:index].rstrip()
    return line


def _trimmed(name: str, lines: list[str], file: str, first_line: int) -> Statement | None:
    """A statement from ``lines`` (starting at file line ``first_line``), blank lines trimmed."""
    lines = _blank_comments(lines)
    while lines and not lines[0].strip():
        lines, first_line = lines[1:], first_line + 1
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    if not lines:
        return None
    text = "\n".join(line.rstrip() for line in lines)
    if not _PLSQL_START.match(text):
        # plain SQL: trailing comments go too (PL/SQL units and function bodies are kept as
        # written: the server compiles them, and a "--" inside them may be code)
        text = "\n".join(_without_trailing_comment(line) for line in text.splitlines())
        text = _STATEMENT_END.sub("", text)  # Oracle refuses a trailing ";" on plain SQL
    return Statement(name, text, file, first_line)


def parse_named(text: str, file: str) -> dict[str, Statement]:
    """The named statements of one file (see the module docstring)."""
    found: dict[str, Statement] = {}
    current: str | None = None
    start = 0
    body: list[str] = []

    def finish() -> None:
        if current is None:
            return
        chunk = [line for line in body if not _SLASH_LINE.match(line)]
        parsed = _trimmed(current, chunk, file, start)
        if parsed is None:
            raise ConfigError(f"{file}: statement {current!r} is empty")
        found[current] = parsed

    for number, line in enumerate(text.splitlines(), start=1):
        match = _NAME_LINE.match(line.strip())
        if match is None:
            body.append(line)
            continue
        finish()
        current, start, body = match["name"], number + 1, []
        if not _VALID_NAME.fullmatch(current):
            raise ConfigError(f"{file} line {number}: {current!r} is not a statement name ([a-z_][a-z0-9_]*)")
        if current in found:
            raise ConfigError(f"{file} line {number}: statement {current!r} is named twice")
    finish()
    return found


@cache
def named_statements(engine: str) -> dict[str, Statement]:
    """Every named statement of ``sql/<engine>/*.sql`` (names are unique per engine)."""
    folder = resources.files("streamscore") / "sql" / engine
    found: dict[str, Statement] = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".sql"):
            continue
        for name, parsed in parse_named(read_sql(engine, entry.name), f"sql/{engine}/{entry.name}").items():
            if name in found:
                raise ConfigError(f"statement {name!r} is named in both {found[name].file} and {parsed.file}")
            found[name] = parsed
    return found


def statement(engine: str, name: str) -> Statement:
    """The statement ``name`` of ``sql/<engine>/``; ConfigError naming the closest when absent."""
    known = named_statements(engine)
    if name not in known:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"no statement named {name!r} in sql/{engine}/*.sql{hint}")
    return known[name]


def sql(engine: str, name: str) -> str:
    """The text of the statement ``name`` of ``sql/<engine>/``."""
    return statement(engine, name).text


def split_script(text: str, file: str = "<script>") -> list[Statement]:
    """The statements of a script in order (see the module docstring), each with its start line."""
    statements: list[Statement] = []
    lines = text.splitlines()
    chunk_start = 1
    chunk: list[str] = []
    for number, line in enumerate([*lines, "/"], start=1):
        if not _SLASH_LINE.match(line):
            chunk.append(line)
            continue
        statements.extend(_split_chunk(chunk, file, chunk_start, len(statements)))
        chunk_start, chunk = number + 1, []
    return statements


def _split_chunk(chunk: list[str], file: str, first_line: int, counted: int) -> list[Statement]:
    whole = _trimmed(f"{counted + 1}", chunk, file, first_line)
    if whole is None:
        return []
    if _PLSQL_START.match(whole.text):
        return [whole]
    parts: list[Statement] = []
    start = first_line
    body: list[str] = []
    for number, line in enumerate(_blank_comments(chunk), start=first_line):
        body.append(line)
        if _STATEMENT_END.search(line):
            part = _trimmed(f"{counted + len(parts) + 1}", body, file, start)
            if part is not None:
                parts.append(part)
            start, body = number + 1, []
    tail = _trimmed(f"{counted + len(parts) + 1}", body, file, start)
    return [*parts, tail] if tail is not None else parts


def script(engine: str, name: str) -> list[Statement]:
    """The statements of the script ``sql/<engine>/<name>``, in order."""
    return split_script(read_sql(engine, name), f"sql/{engine}/{name}")


def split_statements(text: str) -> list[str]:
    """The statement texts of a script (see :func:`split_script`)."""
    return [part.text for part in split_script(text)]
