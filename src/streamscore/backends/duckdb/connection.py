"""Opening a DuckDB file: the options checked before connecting, and the transaction wrapper."""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import duckdb

from streamscore.errors import ConfigError
from streamscore.shared.timing import PhaseTimes


def memory_config(limit: str | None) -> dict[str, str | bool | int | float | list[str]]:
    """duckdb.connect's config for the ``memory_limit`` option (checked here: a typo fails at start)."""
    if limit is None:
        return {}
    if not re.fullmatch(r"\d+(\.\d+)?\s*([KMGT]i?B|B)", limit.strip(), re.IGNORECASE):
        raise ConfigError(f"duckdb memory_limit must be a size such as 512MB or 2GB, not {limit!r}")
    return {"memory_limit": limit.strip()}


#: DuckDB's worker threads unless the URL sets ``threads``: a batch's statements are small, and on a
#: 2-core machine shared with the broker and the producer one thread gave the same throughput and a
#: lower latency (p50 73–75 ms against 94–99 ms at 10,000 images/s; docs/decisions.md, "BLAS threads
#: and paced producers")
DEFAULT_THREADS = 1


def threads_config(threads: str | None) -> dict[str, str | bool | int | float | list[str]]:
    """duckdb.connect's config for the ``threads`` option: a positive count (default DEFAULT_THREADS)."""
    if threads is None:
        return {"threads": DEFAULT_THREADS}
    if not threads.strip().isdigit() or int(threads) < 1:
        raise ConfigError(f"duckdb threads must be a positive number such as 1 or 4, not {threads!r}")
    return {"threads": int(threads)}


#: rows per row group this backend writes (DuckDB's default: 122,880). A checkpoint compresses the
#: row group being filled anew each time, so its cost grew with the group, up to 1.6 s a checkpoint
#: that stalls every commit; with 16,384 it stays ≈ 60 ms and the file is ≈ 40 % smaller
#: (docs/decisions.md, "DuckDB: small row groups")
ROW_GROUP_SIZE = 16_384

#: DuckDB checkpoints at the commit that takes its write-ahead log past ``checkpoint_threshold``; a
#: checkpoint stalls every commit while it runs. A model install raises the threshold to
#: SWAP_CHECKPOINT_THRESHOLD, so that neither the install nor the new version's first batch pays one on
#: top of the swap; the next gap without a swap sets CHECKPOINT_THRESHOLD (DuckDB's default) again
#: (DuckDBBackend.maintain; docs/decisions.md, "DuckDB: no checkpoint in a swap's gap")
CHECKPOINT_THRESHOLD = "16MB"
SWAP_CHECKPOINT_THRESHOLD = "256MB"


def open_database(path: str, config: dict[str, str | bool | int | float | list[str]]) -> duckdb.DuckDBPyConnection:
    """A connection to the DuckDB file ``path``, attached with :data:`ROW_GROUP_SIZE` (an attach option:
    ``duckdb.connect`` cannot set it) and made the default catalog; ``:memory:`` as it is."""
    if path == ":memory:":
        return duckdb.connect(path, config=config)
    con = duckdb.connect(":memory:", config=config)
    try:
        quoted = path.replace("'", "''")
        con.execute(f"ATTACH '{quoted}' AS scores (ROW_GROUP_SIZE {ROW_GROUP_SIZE})")
        con.execute("USE scores")
    except BaseException:
        con.close()
        raise
    return con


def second_connection(con: duckdb.DuckDBPyConnection, path: str) -> duckdb.DuckDBPyConnection:
    """Another connection to ``con``'s database instance, for another thread (opening the file a second
    time in this process would make a second instance of it), with the same default catalog."""
    other = con.cursor()
    if path != ":memory:":
        other.execute("USE scores")
    return other


def set_checkpoint_threshold(con: duckdb.DuckDBPyConnection, threshold: str) -> None:
    con.execute(f"SET checkpoint_threshold = '{threshold}'")


#: gaps without an install after which checkpoints come back although only a second connection (a
#: version installed ahead and never served, e.g. withdrawn at once) raised the threshold
QUIET_GAPS_BEFORE_CHECKPOINTS = 50


class Deferral:
    """Who holds checkpoints off (see :data:`CHECKPOINT_THRESHOLD`), shared by an instance's connections:
    the loop's own install (lifted at its next gap without one), or only a second connection's (lifted
    after :data:`QUIET_GAPS_BEFORE_CHECKPOINTS`; the loop's no-op install at the switch normally comes first)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_loop = self.by_session = False
        self.quiet_gaps = 0

    def installed(self, by_session: bool) -> None:
        with self._lock:
            self.by_session, self.by_loop = self.by_session or by_session, self.by_loop or not by_session
            self.quiet_gaps = 0

    def lift(self) -> bool:
        """Called in a gap without an install: whether to set the usual threshold again now."""
        with self._lock:
            self.quiet_gaps += 1
            if self.by_loop or (self.by_session and self.quiet_gaps >= QUIET_GAPS_BEFORE_CHECKPOINTS):
                self.by_loop = self.by_session = False
                return True
            return False


def check_database_path(path: Path) -> None:
    """Refuse, with the fix, a path DuckDB can never open (retrying would not help)."""
    if not path.parent.is_dir():
        raise ConfigError(f"folder {path.parent} for the DuckDB file does not exist; create it or fix the URL")
    if path.is_dir():
        raise ConfigError(f"{path} is a folder, not a DuckDB file; name a file in it, e.g. duckdb:///{path}/scores.duckdb")
    target = path if path.exists() else path.parent
    if not os.access(target, os.W_OK):
        raise ConfigError(f"{target} is not writable by this user; fix its permissions or choose another path")


class Transaction:
    """begin … commit (or rollback on error, or always when commit=False), the driver's calls."""

    def __init__(self, con: duckdb.DuckDBPyConnection, commit: bool, timings: PhaseTimes | None = None) -> None:
        self.con, self.commit = con, commit
        self.timings = timings or PhaseTimes()  # the commit's time goes to its "commit" phase

    def __enter__(self) -> None:
        self.con.begin()

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None and self.commit:
            with self.timings.phase("commit"):
                self.con.commit()
        else:
            self.con.rollback()
