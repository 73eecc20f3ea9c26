"""MNIST_SCORER is compiled only upward, evicts the least recently used model, fetches a batch
in one round trip (issue 16 item 7). No Oracle here: the decision is a pure function, the
eviction is read from the package source and simulated, the fetch sizes seen by a fake cursor.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import oracledb
import pytest

from streamscore.backends import BackendURL, ModelRef, PurgeReport
from streamscore.backends.base import ImageBatch
from streamscore.backends.oracle import OracleBackend
from streamscore.backends.oracle import package as oracle_package
from streamscore.backends.oracle import statements as oracle_sql
from streamscore.backends.sqlfiles import read_sql
from streamscore.errors import BackendError, ConfigError

InstalledPackage = oracle_package.InstalledPackage
FILE_DIGEST = "f" * 64


def line(version: int) -> str:
    return f"  c_package_version CONSTANT PLS_INTEGER := {version};   -- comment"


@pytest.mark.parametrize(
    ("installed", "action"),
    [
        (InstalledPackage(None, 0, None), "compile"),                    # nothing installed
        (InstalledPackage("old", 2, None), "compile"),                   # from before versions
        (InstalledPackage("old", 2, line(2)), "compile"),                # older version
        (InstalledPackage(FILE_DIGEST, 2, line(3)), "keep"),             # this one
        (InstalledPackage(FILE_DIGEST, 1, line(3)), "compile"),          # this one, invalid
        (InstalledPackage("other", 2, line(3)), "forgotten-bump"),       # same number, other text
        (InstalledPackage("newer", 2, line(4)), "keep"),                 # a newer consumer's
        (InstalledPackage("newer", 0, line(4)), "newer-invalid"),        # never compiled over
    ],
)
def test_the_package_is_compiled_only_upward(installed: InstalledPackage, action: str) -> None:
    assert oracle_package.decide(installed, 3, FILE_DIGEST) == action


def test_the_file_declares_its_version_in_the_spec() -> None:
    source = read_sql("oracle", oracle_sql.PACKAGE_FILE)
    spec = source[: source.index("CREATE OR REPLACE PACKAGE BODY")]
    assert oracle_package.declared_version(spec) == oracle_package.file_version() >= 2
    # on one line, so the USER_SOURCE row select_package_state reads holds the whole declaration
    assert len([text for text in spec.splitlines() if "c_package_version" in text and "CONSTANT" in text]) == 1
    state = oracle_sql.statement("select_package_state")
    assert "user_source" in state and "type = 'PACKAGE'" in state


class Cursor:
    """Just enough of a cursor for init_schema and write_batch; records what it is asked."""

    def __init__(self, log: list[Any], rows: dict[str, list[tuple[Any, ...]]]) -> None:
        self.log, self.rows_by_start, self.rows = log, rows, []
        self.arraysize, self.prefetchrows = 100, 2

    def __enter__(self) -> Cursor:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def setinputsizes(self, *args: Any) -> None:
        return None

    def execute(self, sql: str, params: Any = None, **kwargs: Any) -> None:
        start = " ".join(sql.split()[:3])
        self.log.append(("execute", start, self.arraysize, self.prefetchrows))
        self.rows = self.rows_by_start.get(start, [])

    def executemany(self, sql: str, params: Any, batcherrors: bool = False) -> None:
        self.log.append(("executemany", sql.split()[2]))

    def getbatcherrors(self) -> list[Any]:
        return []

    def callproc(self, name: str, params: Any) -> None:
        self.log.append(("callproc", name))

    def fetchone(self) -> tuple[Any, ...] | None:
        return self.rows[0] if self.rows else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self.rows


class Connection:
    def __init__(self, rows: dict[str, list[tuple[Any, ...]]]) -> None:
        self.log: list[Any] = []
        self.rows = rows
        self.call_timeout = 0
        self.module = ""

    def cursor(self) -> Cursor:
        return Cursor(self.log, self.rows)

    def commit(self) -> None:
        self.log.append(("commit",))

    def rollback(self) -> None:
        self.log.append(("rollback",))

    def close(self) -> None:
        return None


def connected(
    monkeypatch: pytest.MonkeyPatch, rows: dict[str, list[tuple[Any, ...]]]
) -> tuple[OracleBackend, Connection]:
    conn = Connection(rows)
    monkeypatch.setattr(oracledb, "connect", lambda **kwargs: conn)
    backend = OracleBackend(BackendURL.parse("oracle://app:pw@db:1521/FREEPDB1"))
    backend.connect()
    return backend, conn


def compiled(conn: Connection) -> bool:
    return any(entry[0] == "execute" and entry[1].startswith("CREATE OR REPLACE") for entry in conn.log)


def test_an_older_consumer_leaves_a_newer_package_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    newer = oracle_package.file_version() + 1
    backend, conn = connected(monkeypatch, {"SELECT (SELECT source_sha256": [("x", 2, line(newer))]})
    backend.init_schema()
    assert not compiled(conn)
    conn.rows["SELECT (SELECT source_sha256"] = [("x", 1, line(newer))]
    with pytest.raises(BackendError, match=f"version {newer} .* invalid"):
        backend.init_schema()
    assert not compiled(conn)


def test_a_forgotten_version_bump_is_not_compiled(monkeypatch: pytest.MonkeyPatch,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    same = oracle_package.file_version()
    backend, conn = connected(monkeypatch, {"SELECT (SELECT source_sha256": [("other", 2, line(same))]})
    backend.init_schema()
    assert not compiled(conn)
    assert "raise the version" in caplog.text


def test_predictions_are_fetched_in_one_round_trip(monkeypatch: pytest.MonkeyPatch) -> None:
    ids = [f"img-{i}" for i in range(700)]
    probs = np.full(10, 0.1, np.float32).tobytes()
    backend, conn = connected(monkeypatch, {"SELECT p.image_id, p.predicted,": [(i, 1, probs) for i in ids]})
    batch = ImageBatch("b", ids, np.zeros((700, 784), np.uint8), np.full(700, -1, np.int16),
                       np.zeros(700, np.int64), [])
    backend.write_batch(batch, ModelRef("mlp", 1, "shadow"), "g")
    fetch = next(entry for entry in conn.log if entry[1] == "SELECT p.image_id, p.predicted,")
    assert fetch[2:] == (700, 700)


def simulate_cache(source: str, uses: list[str], capacity: int) -> tuple[list[str], int]:
    """ensure_loaded's bookkeeping, as the package source states it: returns cache keys, loads."""
    assert "g_models(l_key).last_used := g_clock;" in source
    assert "IF NOT g_models.EXISTS(l_key) AND g_models.COUNT >= c_max_cached THEN" in source
    assert re.search(r"IF g_models\(l_key\)\.last_used < g_models\(l_oldest\)\.last_used THEN", source)
    loads, cache = 0, {}
    for clock, key in enumerate(uses, start=1):  # g_clock := g_clock + 1
        if key not in cache and len(cache) >= capacity:
            del cache[min(cache, key=lambda k: cache[k])]  # clock values are unique
        if key not in cache:
            loads += 1
        cache[key] = clock
    return sorted(cache), loads


def test_the_champion_used_every_batch_is_never_evicted() -> None:
    source = read_sql("oracle", oracle_sql.PACKAGE_FILE)
    capacity = int(re.search(r"c_max_cached\s+CONSTANT PLS_INTEGER := (\d+);", source).group(1))  # type: ignore[union-attr]
    assert "g_models.DELETE;" not in source  # the old "drop everything" eviction
    uses = []
    for shadow in range(1, 8):  # a champion and a stream of shadow candidates
        uses += ["mlp:1", f"mlp:{shadow + 1}", "mlp:1"]
    cache, loads = simulate_cache(source, uses, capacity)
    assert "mlp:1" in cache and len(cache) == capacity
    assert loads == 1 + 7  # the champion was read once


class Var:
    def __init__(self, value: int) -> None:
        self.value = value

    def getvalue(self) -> int:
        return self.value


def test_purge_calls_the_package_and_returns_the_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    backend, _conn = connected(monkeypatch, {})
    calls: list[Any] = []
    outputs = iter([Var(1200), Var(2300)])

    def callproc(self: Cursor, name: str, params: Any) -> None:
        calls.append((name, params))

    monkeypatch.setattr(Cursor, "var", lambda self, kind: next(outputs), raising=False)
    monkeypatch.setattr(Cursor, "callproc", callproc)
    assert backend.purge(86_400, rows_per_commit=500) == PurgeReport(1200, 2300)
    (name, params), = calls
    assert name == "mnist_scorer.purge" and params[0] == 86_400 and params[3] == 500
    with pytest.raises(ConfigError):
        backend.purge(-1)


def test_purge_deletes_predictions_before_images_and_commits_per_chunk() -> None:
    source = read_sql("oracle", oracle_sql.PACKAGE_FILE)
    body = source[source.index("PROCEDURE purge(", source.index("PACKAGE BODY")): source.index("END purge;")]
    assert body.index("DELETE FROM mnist_predictions") < body.index("DELETE FROM mnist_images") < body.index("COMMIT")
    assert "ROWNUM <= p_rows_per_commit" in body
    assert "CREATE INDEX mnist_images_inserted_ix ON mnist_images (inserted_at)" in read_sql("oracle", "schema.sql")


def test_version_one_consumers_keep_their_entry_point() -> None:
    """A rolling upgrade: consumers from before version 2 call score_batch(batch_id, name, version,
    role) and find their images by batch_id; new ones call score_staged (mnist_batch_ids)."""
    source = read_sql("oracle", oracle_sql.PACKAGE_FILE)
    spec = source[: source.index("CREATE OR REPLACE PACKAGE BODY")]
    legacy = re.search(r"PROCEDURE score_batch\((.*?)\);", spec, flags=re.S)
    assert legacy is not None
    assert [line.split()[0] for line in legacy.group(1).strip().splitlines()] == [
        "p_batch_id", "p_model_name", "p_model_version", "p_role"]
    start = source.index("PROCEDURE score_batch(", source.index("PACKAGE BODY"))
    body = source[start: source.index("END score_batch;")]
    assert "WHERE i.batch_id = p_batch_id" in body
    assert oracle_sql.SCORE_PROCEDURE == "mnist_scorer.score_staged" and "PROCEDURE score_staged(" in spec
