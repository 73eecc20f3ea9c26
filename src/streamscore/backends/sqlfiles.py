"""Read the plain SQL files under ``sql/<engine>/`` that ship inside the package.

Only identifiers are ever substituted into these files; values are always bind
variables.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

from streamscore.errors import ConfigError

#: a line holding only "/" ends a PL/SQL block (SQL*Plus convention)
_SLASH_LINE = re.compile(r"^\s*/\s*$", re.MULTILINE)


@cache
def read_sql(engine: str, name: str) -> str:
    """The text of ``sql/<engine>/<name>``."""
    path = resources.files("streamscore") / "sql" / engine / name
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"SQL file sql/{engine}/{name} is missing from the installation") from None


def _strip_line_comments(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))


_PLSQL_START = re.compile(
    r"^\s*(BEGIN|DECLARE|CREATE\s+(OR\s+REPLACE\s+)?(EDITIONABLE\s+)?"
    r"(PACKAGE|PROCEDURE|FUNCTION|TRIGGER|TYPE))\b",
    re.IGNORECASE,
)


def split_statements(text: str) -> list[str]:
    """Split a script into statements.

    A lone ``/`` line ends a chunk. A chunk that starts a PL/SQL unit (BEGIN,
    DECLARE, CREATE PACKAGE/PROCEDURE/FUNCTION/TRIGGER/TYPE) is one statement, kept
    whole with its final ``END;``. Other chunks are split on ``;`` at the end of a
    line. Whole-line ``--`` comments are dropped.
    """
    statements: list[str] = []
    for chunk in _SLASH_LINE.split(text):
        body = _strip_line_comments(chunk).strip()
        if not body:
            continue
        if _PLSQL_START.match(body):
            statements.append(body)
            continue
        parts = re.split(r";[ \t]*$", body, flags=re.MULTILINE)
        statements.extend(part.strip() for part in parts if part.strip())
    return statements
