"""Which BLAS the server's numpy uses: the PL/Python scorer's matrix products run on it.

Debian's numpy links the generic ``libblas.so.3``; without OpenBLAS installed that is the
reference BLAS, and the forward pass of a batch takes about twice as long (docs/postgres.md).
``init_schema`` runs the ``report_blas`` DO block (sql/postgres/connection.sql), which sends the
BLAS libraries mapped into the server process as one NOTICE; :func:`blas_kind` names them and
:func:`report_blas` logs the result, as a warning for the reference BLAS.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from streamscore.backends.postgres import statements as q

log = logging.getLogger(__name__)

NOTICE_PREFIX = "streamscore-blas "
#: (keyword in a library path or numpy's build name, the implementation it means), first match wins
IMPLEMENTATIONS = (
    ("mkl", "mkl"), ("openblas", "openblas"), ("blis", "blis"), ("atlas", "atlas"),
    ("accelerate", "accelerate"), ("veclib", "accelerate"), ("armpl", "armpl"),
)


@dataclass(frozen=True)
class BlasReport:
    """What the server's numpy said about its BLAS."""

    numpy: str = ""
    libraries: Sequence[str] = field(default_factory=tuple)
    build: str = ""

    @property
    def kind(self) -> str:
        return blas_kind(self.libraries, self.build)


def blas_kind(libraries: Sequence[str], build: str = "") -> str:
    """"openblas", "mkl", … from the mapped libraries (or numpy's build name when none are
    mapped); "reference" for a plain libblas without an optimised one; "unknown" otherwise."""
    paths = [path.lower() for path in libraries]
    for keyword, kind in IMPLEMENTATIONS:
        if any(keyword in path for path in paths):
            return kind
    if any(path.rsplit("/", 1)[-1].startswith("libblas") for path in paths):
        return "reference"
    if not paths:
        for keyword, kind in IMPLEMENTATIONS:
            if keyword in build.lower():
                return kind
    return "unknown"


def parse_notice(message: str) -> BlasReport | None:
    """The report of a ``report_blas`` NOTICE, or None for any other notice."""
    if not message.startswith(NOTICE_PREFIX):
        return None
    data: dict[str, Any] = json.loads(message[len(NOTICE_PREFIX):])
    return BlasReport(str(data.get("numpy", "")), tuple(map(str, data.get("libraries", []))),
                      str(data.get("build", "")))


def report_blas(conn: psycopg.Connection[Any]) -> BlasReport | None:
    """Ask the server's numpy for its BLAS and log it (a warning for the reference BLAS).

    Never raises: the scorer works on any BLAS, this is advice for the operator.
    """
    reports: list[BlasReport] = []

    def on_notice(diagnostic: psycopg.errors.Diagnostic) -> None:
        report = parse_notice(diagnostic.message_primary or "")
        if report is not None:
            reports.append(report)

    conn.add_notice_handler(on_notice)
    try:
        conn.execute(q.statement("report_blas"))
    except psycopg.Error as exc:
        # a DO block in PL/Python (an untrusted language) needs a superuser, like `db init`
        log.info("could not tell which BLAS the server's numpy uses (%s); `streamscore db init` as a "
                 "superuser reports it", str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        return None
    finally:
        conn.remove_notice_handler(on_notice)
    if not reports:
        return None
    report = reports[0]
    libraries = ", ".join(report.libraries) or f"build: {report.build or 'unknown'}"
    if report.kind == "reference":
        log.warning(
            "the server's numpy %s runs on the reference BLAS (%s): in-database scoring is about "
            "2x slower; install OpenBLAS on the database server (Debian: apt-get install "
            "libopenblas0-pthread) and restart PostgreSQL", report.numpy, libraries)
    else:
        log.info("the server's numpy %s uses %s BLAS (%s)", report.numpy, report.kind, libraries)
    return report
