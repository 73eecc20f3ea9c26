"""Classify psycopg errors as retriable, data or fatal, by SQLSTATE.

* retriable (:class:`BackendUnavailable`): a lost or refused connection
  (``psycopg.OperationalError`` without a SQLSTATE, class 08), serialization
  failure and deadlock (40001, 40P01), lock not available (55P03), a server
  shutting down or starting (57P01, 57P02, 57P03) and insufficient resources
  (class 53: too many connections 53300, disk full, out of memory);
* data (:class:`BackendDataError`): class 22 (data exception) and class 23
  (integrity: check, not-null, foreign key); the message carries the SQLSTATE;
* not installed (:class:`ArtifactError` ``not-installed``): P0002 from the scoring function;
* fatal (:class:`BackendError`): everything else, e.g. 42P01 (undefined table),
  42501 (insufficient privilege), 28P01 (bad password), and connection settings libpq
  refuses before any SQLSTATE exists (``sslmode=require`` on a server without SSL, an
  invalid ``sslmode`` or port): retrying cannot fix them; for the usual set-up mistakes
  the message names the fix.

Messages never hold the password: the URL is shown masked and the password text is
scrubbed from driver messages too (libpq echoes parts of a bad conninfo).
"""

from __future__ import annotations

import psycopg

from streamscore.backends.base import describe
from streamscore.errors import ErrorKind

#: raised by streamscore_score_batch when the model version is not installed
NOT_INSTALLED_SQLSTATE = "P0002"
DATA_CLASSES = frozenset({"22", "23"})

INIT_HINT = "run `streamscore db init --backend postgresql://…` (consumers also do it at start)"

#: what to do about common fatal errors (shown after the driver's message)
FIXES: dict[str, str] = {
    "42P01": f"the streamscore tables are missing: {INIT_HINT}",
    "42883": f"function streamscore_score_batch is missing: {INIT_HINT}",
    "42501": "insufficient privilege: the user needs CREATE on the schema; CREATE EXTENSION plpython3u "
             "and CREATE FUNCTION in PL/Python need a superuser once (run `streamscore db init` as one, "
             "see docs/postgres.md)",
    "58P01": "PL/Python is not installed on the server: apt-get install postgresql-plpython3-<major> "
             "python3-numpy, then restart the cluster (scripts/ci-postgres.sh does both)",
    "0A000": "PL/Python is not available: install postgresql-plpython3-<major> (scripts/ci-postgres.sh)",
    "38000": "the PL/Python scorer failed: is python3-numpy installed for the server's Python? "
             "(scripts/ci-postgres.sh)",
    "P0002": "the model is not installed in this schema: install_model() it first",
    "28P01": "password authentication failed: check the user and password of the backend URL",
    "28000": "the server refused this user: check the user in the backend URL and pg_hba.conf",
    "3D000": "the database does not exist: create it (CREATE DATABASE) or fix the URL",
}

#: connection failures reported by libpq before any SQLSTATE exists: message fragment → SQLSTATE
CONNECT_FAILURES: dict[str, str] = {
    "password authentication failed": "28P01",
    "no password supplied": "28P01",
    "no pg_hba.conf entry": "28000",
    "role \"": "28000",  # role "x" does not exist
    # database "x" does not exist; but 'database "x" is not currently accepting connections'
    # (55000, e.g. during a restart) must stay retriable, so the whole phrase is matched
    "\" does not exist": "3D000",
}


#: connection settings libpq refuses without a SQLSTATE: message fragment → what to do; permanent, not an outage
SETTING_FAILURES: dict[str, str] = {
    "SSL was required": "the server does not offer SSL: drop sslmode=require from the backend URL or enable "
                        "ssl on the server",
    "invalid sslmode value": "sslmode takes disable, allow, prefer, require, verify-ca or verify-full",
    "root certificate file": "the sslrootcert file is missing: give it, or use a weaker sslmode",
    "certificate verify failed": "the server's certificate does not verify against sslrootcert",
    "invalid port number": "fix the port in the backend URL",
    "invalid integer value": "an option of the backend URL needs a number",
}


def setting_failure(exc: BaseException) -> str | None:
    """What to do about a connection setting libpq refused (no SQLSTATE), or None."""
    if not isinstance(exc, psycopg.OperationalError) or getattr(exc, "sqlstate", None):
        return None
    text = str(exc)
    return next((todo for fragment, todo in SETTING_FAILURES.items() if fragment in text), None)


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a driver error, or the one implied by a libpq connection failure."""
    state = getattr(exc, "sqlstate", None)
    if isinstance(state, str) and state:
        return state
    if isinstance(exc, psycopg.OperationalError):
        text = str(exc)
        if "FATAL:" in text:
            for fragment, implied in CONNECT_FAILURES.items():
                if fragment in text:
                    return implied
    return None


#: SQLSTATE → (reason, seconds before a retry) of the retriable errors
RETRIABLE: dict[str, tuple[str, float]] = {
    "40001": ("serialization-failure", 0.2),
    "40P01": ("deadlock", 0.2),
    "55P03": ("lock-not-available", 0.2),
    "57P01": ("server-shutdown", 1.0),
    "57P02": ("server-shutdown", 1.0),
    "57P03": ("server-starting", 1.0),
}
RETRIABLE_CLASS_REASONS = {"08": "connection-lost", "53": "insufficient-resources"}


def classify(exc: BaseException) -> ErrorKind:
    """Retriable, data or fatal, with a reason (see the module docstring)."""
    if not isinstance(exc, psycopg.Error):
        return ErrorKind("fatal", "backend")
    state = sqlstate(exc)
    if state is None:
        if setting_failure(exc) is not None:
            return ErrorKind("fatal", "connection-settings")
        # no SQLSTATE: libpq lost or could not open the connection
        if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
            return ErrorKind("retriable", "connection-lost", 1.0)
        return ErrorKind("fatal", "backend")
    if state in RETRIABLE:
        reason, delay = RETRIABLE[state]
        return ErrorKind("retriable", reason, delay)
    if state[:2] in RETRIABLE_CLASS_REASONS:
        return ErrorKind("retriable", RETRIABLE_CLASS_REASONS[state[:2]], 1.0)
    if state[:2] in DATA_CLASSES:
        return ErrorKind("data", "db-rejected")
    if state == NOT_INSTALLED_SQLSTATE:
        return ErrorKind("fatal", "not-installed")
    return ErrorKind("fatal", "backend")


def detail(exc: BaseException, secret: str | None) -> str:
    """One line naming the driver error and its (implied) SQLSTATE, without the password."""
    text = describe(exc)
    state = sqlstate(exc)
    if state and not getattr(exc, "sqlstate", None):
        text = f"[{state}] {text}"
    return text.replace(secret, "***") if secret else text


def fix(exc: BaseException) -> str | None:
    return FIXES.get(sqlstate(exc) or "") or setting_failure(exc)
