"""Classify python-oracledb errors as retriable, data or fatal, by error code.

Per-row errors of ``executemany(batcherrors=True)`` are classified one by one with
:func:`classify_error` (a deadlock on one row is retriable, not bad data).

Oracle's exception classes do not say what to do (a deadlock is a plain
``DatabaseError``, a lost connection is ``DPY-4011`` with the ORA number in
``.code``), so the Oracle backend maps on codes, as python-oracledb's own docs
advise ("match codes, not text"):

* retriable (:class:`BackendUnavailable`): the driver marks the error
  recoverable, or it is a lost/refused connection (DPY-4011, DPY-6005, DPY-6001,
  DPY-6000, DPY-1001), a lock or deadlock (ORA-00054, ORA-00060, ORA-30006), a
  database starting or stopping (ORA-01033, ORA-01034, ORA-01089, ORA-01090,
  ORA-12514…), a call timeout (DPY-4024), or discarded package state after a
  recompile (ORA-04068 and friends: the next call works);
* data (:class:`BackendDataError`): a row broke a constraint or type (NULL,
  check, length, precision), incl. the scorer's own ORA-20005 (bad image);
* not installed (:class:`ArtifactError` ``not-installed``): the scorer's ORA-20001;
* fatal with a reason of its own: out of space (ORA-01536 quota, ORA-01653/01688 tablespace
  full, ORA-12954 Free's 12 GB) and out of memory (ORA-04030 process, ORA-04036
  PGA_AGGREGATE_LIMIT): a retry meets the same wall, the message names the fix;
* fatal (:class:`BackendError`): everything else; for the usual set-up mistakes
  the message names the fix.

An ORA-00600 (internal error) ends the session and arrives as DPY-4011 with
``isrecoverable``: retriable with reason ``database-internal-error`` (the session is reopened);
the consume loop caps how often a retriable error may repeat on the same batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import oracledb

from streamscore.errors import BackendDataError, BackendError, BackendUnavailable, ErrorKind, StreamscoreError

#: "existing state of packages has been discarded" and the errors that come with it
PACKAGE_STATE_CODES = frozenset({4061, 4065, 4068, 6508})

#: raised by mnist_scorer when the model version is not installed (ArtifactError not-installed)
NOT_INSTALLED_CODE = 20001

#: ORA codes worth retrying after a pause (the driver marks some as recoverable too)
RETRIABLE_CODES = frozenset({
    1,      # unique key: another consumer wrote the same row first; the retry skips it
    54,     # resource busy and acquire with NOWAIT
    60,     # deadlock detected
    376, 1033, 1034, 1089, 1090, 1115,  # instance/file starting, stopping or unavailable
    12514, 12516, 12519, 12520, 12521, 12528, 12541, 12571, 12757,  # listener/service not ready
    16456,  # switchover in progress
    25408,  # cannot safely replay call
    30006,  # resource busy; acquire with WAIT timeout expired
    *PACKAGE_STATE_CODES,
})

#: driver (DPY) errors worth retrying: connection closed/refused/failed, pool and call timeouts
RETRIABLE_DRIVER_CODES = frozenset({
    "DPY-1001", "DPY-4005", "DPY-4011", "DPY-4024", "DPY-6000", "DPY-6001", "DPY-6005",
})

#: ORA codes that mean "this row is bad" (the loop bisects and dead-letters)
DATA_CODES = frozenset({
    1400,   # cannot insert NULL
    1401,   # inserted value too large for column
    1438,   # value larger than specified precision
    1722,   # invalid number
    2290,   # check constraint violated
    2291,   # parent key not found
    12899,  # value too large for column
    20005,  # mnist_scorer: image does not have 784 pixels
})

#: fatal errors with a reason of their own: retrying meets the same limit again
FATAL_REASONS: dict[int, str] = {
    1536: "quota-exceeded",    # space quota exceeded for tablespace
    1653: "out-of-space",      # unable to extend table in tablespace
    1688: "out-of-space",      # unable to extend table partition
    12954: "out-of-space",     # Oracle Free: more than 12 GB of user data
    4030: "out-of-memory",     # out of process memory
    4036: "out-of-memory",     # PGA memory used exceeds PGA_AGGREGATE_LIMIT
}

#: internal errors: the session is ended (DPY-4011, isrecoverable), a new one may work
INTERNAL_ERROR_CODES = frozenset({600, 7445})

#: driver codes after which the session is gone and the connection must be reopened
DEAD_SESSION_CODES = frozenset({"DPY-1001", "DPY-4011"})

#: what to do about common fatal errors (shown after the driver's message)
FIXES: dict[int, str] = {
    942: "the streamscore tables are missing: run `streamscore db init --backend oracle://…` "
         "(consumers also do it at start) or sql/oracle/schema.sql and mnist_scorer.sql",
    1017: "invalid user name or password: check the user in the backend URL and the password "
          "(URL or STREAMSCORE_ORACLE_PASSWORD)",
    1031: "insufficient privileges: run sql/oracle/00_create_user.sql as a DBA "
          "(CREATE SESSION, CREATE TABLE, CREATE PROCEDURE)",
    1045: "the user lacks CREATE SESSION: run sql/oracle/00_create_user.sql as a DBA",
    1950: "no quota on the tablespace: run sql/oracle/00_create_user.sql as a DBA (QUOTA ON users)",
    4063: "package MNIST_SCORER has errors: run `streamscore db init` and read its compile errors",
    6550: "package MNIST_SCORER is missing or invalid: run `streamscore db init --backend "
          "oracle://…` or sql/oracle/mnist_scorer.sql",
    1536: "the user's tablespace quota is full: a DBA raises it (ALTER USER … QUOTA 4G ON users, "
          "or 00_create_user.sql with a bigger quota) or old images and predictions are "
          "deleted (see 'Space' in docs/oracle.md)",
    1653: "the tablespace is full: a DBA adds a datafile or enables AUTOEXTEND, or old images "
          "and predictions are deleted (see 'Space' in docs/oracle.md)",
    1688: "the tablespace is full: a DBA adds a datafile or enables AUTOEXTEND",
    4030: "the database server ran out of process memory: lower the batch size "
          "(--batch-size) or ask a DBA to give the instance more memory",
    4036: "the session exceeded PGA_AGGREGATE_LIMIT: lower the batch size (--batch-size) "
          "or ask a DBA to raise PGA_AGGREGATE_LIMIT",
    12954: "Oracle Free's 12 GB user-data limit is reached: delete old images and predictions",
    20001: "the model is not installed in this database: install_model() it first",
    20006: "purge takes an age of 0 seconds or more and a chunk of 1 row or more",
}


def error_codes(exc: BaseException) -> tuple[int, str]:
    """The ORA number (0 when none) and the full code ("ORA-00060", "DPY-4011") of an error."""
    error = exc.args[0] if exc.args else None
    code = getattr(error, "code", 0)
    full_code = getattr(error, "full_code", "")
    return (code if isinstance(code, int) else 0, full_code if isinstance(full_code, str) else "")


def is_package_state_error(exc: BaseException) -> bool:
    return error_codes(exc)[0] in PACKAGE_STATE_CODES


def is_dead_session(exc: BaseException) -> bool:
    error = exc.args[0] if exc.args else None
    if bool(getattr(error, "is_session_dead", False)):
        return True
    return error_codes(exc)[1] in DEAD_SESSION_CODES


def classify(exc: BaseException) -> ErrorKind:
    """Retriable, data or fatal, with a reason (see the module docstring)."""
    if not isinstance(exc, oracledb.Error):
        return ErrorKind("fatal", "backend")
    return classify_error(exc.args[0] if exc.args else None, exc)


def classify_error(error: object, exc: BaseException | None = None) -> ErrorKind:
    """Classify one driver error object: an exception's ``args[0]``, or one row's batch error
    (``cursor.getbatcherrors()``), which carries the same code, full_code and isrecoverable."""
    code = getattr(error, "code", 0)
    code = code if isinstance(code, int) else 0
    full_code = str(getattr(error, "full_code", "") or "")
    if code == NOT_INSTALLED_CODE:
        return ErrorKind("fatal", "not-installed")
    if code in FATAL_REASONS:
        return ErrorKind("fatal", FATAL_REASONS[code])
    if bool(getattr(error, "isrecoverable", False)) or full_code in RETRIABLE_DRIVER_CODES \
            or code in RETRIABLE_CODES:
        return ErrorKind("retriable", retry_reason(code, full_code), retry_delay_for(code))
    if code in DATA_CODES or isinstance(exc, oracledb.IntegrityError | oracledb.DataError):
        return ErrorKind("data", "db-rejected")
    return ErrorKind("fatal", "backend")


def retry_reason(code: int, full_code: str) -> str:
    """A short reason for a retriable error: what kind of outage it is."""
    if code in PACKAGE_STATE_CODES:
        return "package-recompiled"
    if code in INTERNAL_ERROR_CODES:
        return "database-internal-error"
    if code == 60:
        return "deadlock"
    if code in (1, 54, 30006):
        return "row-busy"
    if full_code.startswith("DPY-") or code in (3113, 3114, 3135):
        return "connection-lost"
    return "backend-unavailable"


def retry_delay_for(code: int) -> float:
    """Seconds to wait before retrying: none after a package recompile, short after a deadlock."""
    if code in PACKAGE_STATE_CODES or code == 1:
        return 0.0
    if code in (54, 60, 30006):
        return 0.5
    return 1.0


def retry_delay(exc: BaseException) -> float:
    return retry_delay_for(error_codes(exc)[0])


def fix(exc: BaseException) -> str | None:
    """What to do about a common fatal error (shown after the driver's message)."""
    return FIXES.get(error_codes(exc)[0])


def row_errors(errors: list[Any], binds: Sequence[Sequence[Any]]) -> StreamscoreError:
    """One error for the per-row errors of an image INSERT, each classified on its own.

    fatal beats retriable beats data: a deadlock on one row is an outage to retry (the retry
    meets any bad row again, and then the loop bisects), not a reason to dead-letter rows.
    """
    kinds = [(classify_error(error), error) for error in errors]
    for wanted in ("fatal", "retriable", "data"):
        matching = [(kind, error) for kind, error in kinds if kind.kind == wanted]
        if matching:
            break
    kind, first = matching[0]
    where = (f"{len(matching)} of {len(binds)} images, first {binds[first.offset][0]!r}: "
             f"[{first.full_code}] {str(first.message).splitlines()[0]}")
    hint = FIXES.get(first.code if isinstance(first.code, int) else 0)
    if hint is not None:
        where = f"{where} ({hint})"
    if kind.kind == "retriable":
        return BackendUnavailable(f"oracle unavailable while inserting {where}",
                                  retry_after=kind.retry_after or 0.0, reason=kind.reason)
    if kind.kind == "data":
        return BackendDataError(f"oracle rejected {where}", reason=kind.reason)
    return BackendError(f"oracle failed on {where}", reason=kind.reason)
