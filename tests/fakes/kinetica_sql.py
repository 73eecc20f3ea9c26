"""The stand-in's database: Kinetica tables kept in an embedded DuckDB (tests only).

Only the statements of ``sql/kinetica/`` are supported (:func:`check_known`: the text of one of
them, ``{schema}``/``{ids}``/``{versions}`` filled in; a test's own probe carries
:data:`TEST_PROBE`); each is rewritten to DuckDB's dialect by a few literal rules (see
:func:`to_duckdb`), so a new Kinetica statement fails loudly here instead of passing by accident. Tables remember their
Kinetica column types (from the DDL) to answer ``/show/table`` with a gpudb type schema and to
decode binary inserts.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa

#: Kinetica DDL type → (Avro base type, column properties)
_TYPES = {
    "BLOB": ("bytes", []), "SMALLINT": ("int", ["int16"]), "INTEGER": ("int", []), "BIGINT": ("long", []),
    "REAL": ("float", []), "DOUBLE": ("double", []), "TIMESTAMP": ("long", ["timestamp"]), "VARCHAR": ("string", []),
}
_CREATE = re.compile(r"CREATE\s+(REPLICATED\s+)?TABLE\s+IF\s+NOT\s+EXISTS\s+(\w+)\.(\w+)\s*\((.*)\)\s*$", re.S | re.I)
_COLUMN = re.compile(r"^(\w+)\s+(VARCHAR\((\d+)\)|\w+)(\s+NOT\s+NULL)?$", re.I)


@dataclass
class Column:
    name: str
    base: str  # Avro type: string, bytes, int, long, float, double
    properties: list[str]
    nullable: bool


@dataclass
class KineticaTable:
    name: str  # schema.table
    columns: list[Column]
    replicated: bool
    shard_key: list[str] = field(default_factory=list)

    def type_schema(self) -> str:
        """The gpudb type schema (Avro record JSON) /show/table returns."""
        fields = [{"name": c.name, "type": [c.base, "null"] if c.nullable else c.base} for c in self.columns]
        return json.dumps({"type": "record", "name": "type_name", "fields": fields})

    def properties(self) -> dict[str, list[str]]:
        return {c.name: [*c.properties, *(["nullable"] if c.nullable else [])] for c in self.columns}


def parse_create(statement: str) -> KineticaTable:
    """The Kinetica table a ``CREATE [REPLICATED] TABLE IF NOT EXISTS`` statement defines."""
    match = _CREATE.match(statement.strip())
    if match is None:
        raise ValueError(f"not a CREATE TABLE the stand-in knows: {statement[:80]!r}")
    columns: list[Column] = []
    primary: list[str] = []
    shard: list[str] = []
    for part in re.split(r",(?![^()]*\))", match[4]):
        text = " ".join(part.split())
        if not text:
            continue
        key = re.match(r"(PRIMARY|SHARD) KEY \((.*)\)", text, re.I)
        if key:
            names = [n.strip() for n in key[2].split(",")]
            (primary if key[1].upper() == "PRIMARY" else shard).extend(names)
            continue
        column = _COLUMN.match(text)
        if column is None:
            raise ValueError(f"column definition the stand-in does not know: {text!r}")
        kind = column[2].split("(")[0].upper()
        base, props = _TYPES[kind]
        if column[3]:
            props = [*props, f"char{column[3]}"] if int(column[3]) <= 256 else props
        columns.append(Column(column[1], base, list(props), column[4] is None))
    for c in columns:
        c.properties += ["primary_key"] * (c.name in primary) + ["shard_key"] * (c.name in shard)
    return KineticaTable(f"{match[2]}.{match[3]}", columns, bool(match[1]), shard or primary)


#: a comment marking a test's own statement (set-up, counting): not from sql/kinetica, let through
TEST_PROBE = "/* streamscore test probe */"
_BINDS = r"\$\d+(?:,\ \$\d+)*"


@functools.cache
def _known() -> tuple[re.Pattern[str], ...]:
    """The statements of sql/kinetica as patterns (whitespace-normalized; placeholders as the backend fills them)."""
    from streamscore.backends.sqlfiles import named_statements, read_sql, split_script

    texts = [s.text for s in named_statements("kinetica").values()]
    texts += [s.text for s in split_script(read_sql("kinetica", "schema.sql"), "sql/kinetica/schema.sql")]
    patterns = []
    for text in texts:
        pattern = re.escape(" ".join(text.split())).replace(r"\{schema\}", r"\w+")
        patterns.append(re.compile(pattern.replace(r"\{ids\}", _BINDS).replace(r"\{versions\}", _BINDS)))
    return tuple(patterns)


def check_known(statement: str) -> None:
    """ValueError unless ``statement`` is one of sql/kinetica's (or a test probe, :data:`TEST_PROBE`)."""
    text = " ".join(statement.split())
    if TEST_PROBE not in text and not any(p.fullmatch(text) for p in _known()):
        raise ValueError(f"statement not in sql/kinetica, so not supported by the stand-in: {text[:80]!r}")


def to_duckdb(statement: str) -> str:
    """``statement`` (from sql/kinetica) in DuckDB's dialect; ValueError for anything else."""
    text = statement.replace(TEST_PROBE, "").strip()
    if re.match(r"CREATE\s+SCHEMA\s+IF\s+NOT\s+EXISTS\s+\w+$", text, re.I):
        return text
    if re.match(r"CREATE\s+(REPLICATED\s+)?TABLE", text, re.I):
        text = re.sub(r"REPLICATED\s+", "", text, flags=re.I)
        text = re.sub(r",\s*SHARD KEY \([^)]*\)", "", text, flags=re.I)
        return re.sub(r"\bTIMESTAMP\b", "BIGINT", text)  # epoch ms, as the binary API sends it
    text = re.sub(r"\bLONG\((\w+)\)", r"\1", text)  # LONG(timestamp) is epoch ms: stored as such
    if "/* KI_HINT_UPDATE_ON_EXISTING_PK */" in text:
        text = re.sub(r"INSERT INTO (\S+) /\* KI_HINT_UPDATE_ON_EXISTING_PK \*/", r"INSERT OR REPLACE INTO \1", text)
    if not re.match(r"(SELECT|DELETE FROM|INSERT OR REPLACE INTO)\s", text, re.I):
        raise ValueError(f"statement not in sql/kinetica, so not supported by the stand-in: {text[:80]!r}")
    return text


class Database:
    """Kinetica tables in one DuckDB connection (one lock: the HTTP server is threaded)."""

    def __init__(self, path: str = ":memory:") -> None:
        self.con = duckdb.connect(path)
        self.tables: dict[str, KineticaTable] = {}
        self.lock = threading.RLock()

    def execute(self, statement: str, params: list[Any], schema: str = "") -> tuple[
            list[tuple[str, str]], list[tuple[Any, ...]], int]:
        """(columns as (name, DuckDB type), rows, count affected) of one statement; ``schema`` is the
        ``current_schema`` option of /execute/sql (unqualified table names resolve there)."""
        check_known(statement)
        translated = to_duckdb(statement)
        with self.lock, self._current_schema(schema):
            if translated.upper().startswith("CREATE") and " TABLE " in translated.upper():
                table = parse_create(statement)
                self.tables.setdefault(table.name.lower(), table)
            cursor = self.con.execute(translated, params)
            if cursor.description is None:
                return [], [], 0
            columns = [(d[0], str(d[1])) for d in cursor.description]
            rows = cursor.fetchall()
            if translated.split()[0].upper() in ("DELETE", "INSERT"):
                return [], [], int(rows[0][0]) if rows else 0
            return columns, rows, 0

    @contextlib.contextmanager
    def _current_schema(self, schema: str) -> Iterator[None]:
        if not schema:
            yield
            return
        if not re.fullmatch(r"\w+", schema):
            raise ValueError(f"current_schema {schema!r} is not a plain identifier")
        self.con.execute(f"SET search_path = '{schema}'")
        try:
            yield
        finally:
            self.con.execute("RESET search_path")

    def table(self, name: str) -> KineticaTable:
        with self.lock:
            found = self.tables.get(name.lower())
        if found is None:
            raise KeyError(f"Table '{name}' does not exist")
        return found

    def upsert(self, name: str, rows: list[dict[str, Any]], update_on_existing_pk: bool) -> tuple[int, int]:
        """Insert decoded records; (inserted, updated)."""
        table = self.table(name)
        names = [c.name for c in table.columns]
        verb = "INSERT OR REPLACE" if update_on_existing_pk else "INSERT OR IGNORE"
        keyed = any("primary_key" in c.properties for c in table.columns)
        if not keyed:
            verb = "INSERT"
        incoming = pa.table({n: pa.array([row[n] for row in rows]) for n in names})  # bulk, not row by row
        with self.lock:
            before = self.count(table.name)
            if rows:
                self.con.register("incoming_records", incoming)
                try:
                    self.con.execute(f"{verb} INTO {table.name} ({', '.join(names)}) "
                                     f"SELECT {', '.join(names)} FROM incoming_records").fetchall()
                finally:
                    self.con.unregister("incoming_records")
            inserted = self.count(table.name) - before
        return inserted, len(rows) - inserted if update_on_existing_pk else 0

    def count(self, name: str) -> int:
        with self.lock:
            ((count,),) = self.con.execute(f"SELECT count(*) FROM {name}").fetchall()
        return int(count)

    def select(self, name: str, columns: list[str]) -> list[tuple[Any, ...]]:
        with self.lock:
            return self.con.execute(f"SELECT {', '.join(columns)} FROM {name}").fetchall()
