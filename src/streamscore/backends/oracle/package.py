"""When init_schema compiles MNIST_SCORER: only upward, by the version declared in the package.

Compiling the package discards its state in every session (ORA-04068 on their next call,
weights read again). With a digest alone, old and new consumers of a rolling upgrade would
each find "the other" file installed and compile theirs, back and forth. The spec declares
``c_package_version CONSTANT PLS_INTEGER := N``; the installed spec's line is read from
USER_SOURCE, and the file is compiled only when its N is higher, or when the package is
missing or invalid. Same N with other text is a forgotten version bump: warned, not compiled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from streamscore.backends.sqlfiles import read_sql

PACKAGE_FILE = "mnist_scorer.sql"
_VERSION = re.compile(r"c_package_version\s+CONSTANT\s+PLS_INTEGER\s*:=\s*(\d+)\s*;", re.IGNORECASE)

Action = Literal["keep", "compile", "forgotten-bump", "newer-invalid"]


def declared_version(text: str | None) -> int | None:
    """N of ``c_package_version CONSTANT PLS_INTEGER := N;`` in ``text`` (None when absent)."""
    found = _VERSION.search(text or "")
    return int(found.group(1)) if found else None


def file_version() -> int:
    """The version declared by sql/oracle/mnist_scorer.sql."""
    version = declared_version(read_sql("oracle", PACKAGE_FILE))
    if version is None:
        raise ValueError(f"sql/oracle/{PACKAGE_FILE} declares no c_package_version")
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
