"""When init_schema compiles MNIST_SCORER: only upward, by the version declared in the package.

Compiling the package discards its state in every session (ORA-04068 on their next call,
weights read again). With a digest alone, old and new consumers of a rolling upgrade would
each find "the other" file installed and compile theirs, back and forth. The spec declares
``c_package_version CONSTANT PLS_INTEGER := N``; the installed spec's line is read from
USER_SOURCE, and the file is compiled only when its N is higher, or when the package is
missing or invalid. Same N with other text is a forgotten version bump: warned, not compiled.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Literal

import oracledb

from streamscore.backends.oracle import errors as oracle_errors
from streamscore.backends.oracle import statements as oracle_sql
from streamscore.backends.sqlfiles import read_sql, script
from streamscore.errors import BackendError

log = logging.getLogger(__name__)

_VERSION = re.compile(r"c_package_version\s+CONSTANT\s+PLS_INTEGER\s*:=\s*(\d+)\s*;", re.IGNORECASE)

Action = Literal["keep", "compile", "forgotten-bump", "newer-invalid"]


def declared_version(text: str | None) -> int | None:
    """N of ``c_package_version CONSTANT PLS_INTEGER := N;`` in ``text`` (None when absent)."""
    found = _VERSION.search(text or "")
    return int(found.group(1)) if found else None


def file_version() -> int:
    """The version declared by sql/oracle/mnist_scorer.sql."""
    version = declared_version(read_sql("oracle", oracle_sql.PACKAGE_FILE))
    if version is None:
        raise ValueError(f"sql/oracle/{oracle_sql.PACKAGE_FILE} declares no c_package_version")
    return version


@dataclass(frozen=True)
class InstalledPackage:
    """select_package_state: digest recorded at install, VALID units (of 2), the version line."""

    digest: str | None
    valid_units: int
    version_line: str | None

    @property
    def version(self) -> int:
        """0 for a package from before versions existed (or none at all)."""
        return declared_version(self.version_line) or 0


def decide(installed: InstalledPackage, version: int, digest: str) -> Action:
    """What init_schema does with the package file of ``version`` and ``digest``."""
    valid = installed.valid_units == 2
    if installed.version > version:
        # a newer streamscore installed it: never compile an older one over it
        return "keep" if valid else "newer-invalid"
    if installed.version < version or not valid:
        return "compile"
    return "keep" if installed.digest == digest else "forgotten-bump"


def install(conn: oracledb.Connection, cursor: oracledb.Cursor, *, native: bool) -> None:
    """Compile MNIST_SCORER only upward (its c_package_version) or when invalid (ORA-04068)."""
    digest = oracle_sql.package_digest()
    version = file_version()
    name = oracle_sql.PACKAGE_NAME
    cursor.execute(oracle_sql.statement("select_package_state"), [name, name, name])
    row = cursor.fetchone() or (None, 0, None)
    installed = InstalledPackage(
        None if row[0] is None else str(row[0]), int(row[1] or 0),
        None if row[2] is None else str(row[2]))
    action = decide(installed, version, digest)
    if action == "newer-invalid":
        raise BackendError(
            f"package {name} version {installed.version} (installed by a newer streamscore) is "
            f"invalid: run `streamscore db init` with that newer version; this one ({version}) "
            "never compiles over a newer package")
    if action == "forgotten-bump":
        log.warning("sql/oracle/%s differs from the installed package but declares the same "
                    "c_package_version %d: not compiled (raise the version to install it)",
                    oracle_sql.PACKAGE_FILE, version)
    if action != "compile":
        return
    if native:
        cursor.execute(oracle_sql.statement("native_compilation"))
    units = script("oracle", oracle_sql.PACKAGE_FILE)
    for unit in units:
        cursor.execute(unit.text)  # compile errors are a warning here, not an exception
    cursor.execute(oracle_sql.statement("select_compile_errors"), [name])
    errors = cursor.fetchall()
    if errors:
        raise BackendError(f"package {name} does not compile: {oracle_sql.compile_errors(units, errors)}")
    cursor.execute(oracle_sql.statement("merge_package_digest"), [name, digest])
    conn.commit()
    log.info("installed package %s version %d (sha256 %s)", name, version, digest[:12])


def score_staged(cursor: oracledb.Cursor, arguments: list[object]) -> None:
    """Call the scorer over mnist_batch_ids; once more after ORA-04068 (a compile discarded the package state)."""
    try:
        cursor.callproc(oracle_sql.SCORE_PROCEDURE, arguments)
    except oracledb.DatabaseError as exc:
        if not oracle_errors.is_package_state_error(exc):
            raise
        log.info("package state discarded (package recompiled); calling the scorer again")
        cursor.callproc(oracle_sql.SCORE_PROCEDURE, arguments)
