"""Engine-specific hooks of the contract suite (a plain module; the fixtures are in conftest.py).

DuckDB always runs (a file in tmp_path); PostgreSQL when a server answers
(``STREAMSCORE_TEST_POSTGRES_URL``, tests/postgres_fixtures.py); Oracle when
``STREAMSCORE_TEST_ORACLE_DSN`` is set; Kinetica at ``STREAMSCORE_TEST_KINETICA_URL`` when set,
else on the local stand-in (tests/fakes/kinetica_server.py, with the real gpudb client). Every test uses
its own image-id prefix, model name and consumer group (``Scope``), so engines that share one
schema between tests (Oracle) keep tests apart too.

Hooks per engine: ``forbid_label`` adds a CHECK (label <> 7) to the images table, so that a
batch holding a 7 is rejected by the database itself; ``count`` counts stored rows.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import secrets
from collections.abc import Iterator, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kinetica_fixtures import kinetica_url_or_standin
from oracle_fixtures import ENV as ORACLE_ENV
from oracle_fixtures import oracle_test_url
from postgres_fixtures import postgres_schema_url
from streamscore.backends import Backend, ImageBatch, ModelRef, SourceOffset
from streamscore.backends.sqlfiles import read_sql, split_statements
from streamscore.model.artifact import ModelArtifact
from streamscore.models import bundled_model
from streamscore.shared.mnist import MnistSplit, load_split

SEVEN = 7


@cache
def mnist_test() -> MnistSplit:
    return load_split("test")


def make_batch(scope: Scope, rows: Sequence[int], batch_id: str, *, partition: int = 0) -> ImageBatch:
    """Test images ``rows`` under this test's ids; offsets on (scope.topic, partition) follow the rows."""
    split = mnist_test()
    index = np.asarray(rows, np.int64)
    sources = [SourceOffset(scope.topic, partition, 100 + n) for n in range(len(rows))]
    return ImageBatch(
        batch_id, [scope.image_id(row) for row in rows], split.images[index],
        split.labels[index].astype(np.int16), np.full(len(rows), 1_700_000_000_000, np.int64), sources,
        {(scope.topic, partition): 100 + len(rows)},
    )


def rows_with_label(label: int, wanted: int, *, other: bool = False) -> list[int]:
    labels = mnist_test().labels
    matches = np.flatnonzero(labels != label if other else labels == label)
    return [int(row) for row in matches[:wanted]]


ENGINES = [
    pytest.param("duckdb", id="duckdb"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    pytest.param("oracle", id="oracle", marks=pytest.mark.oracle),
    pytest.param("kinetica", id="kinetica", marks=pytest.mark.kinetica),
]


@dataclasses.dataclass(frozen=True)
class Scope:
    """Names private to one test: image ids, model name, consumer group, topic."""

    tag: str

    @property
    def model_name(self) -> str:
        return f"mlp_{self.tag}"

    @property
    def group(self) -> str:
        return f"group-{self.tag}"

    @property
    def topic(self) -> str:
        return f"images-{self.tag}"

    def image_id(self, index: int) -> str:
        return f"{self.tag}-{index:05d}"

    def model(self, version: int) -> ModelArtifact:
        """A shipped model (mlp-v1, mlp-v2) under this test's model name."""
        return dataclasses.replace(bundled_model(version), name=self.model_name)

    def ref(self, version: int) -> ModelRef:
        return ModelRef(self.model_name, version)


@contextlib.contextmanager
def engine_url(engine: str, tmp_path: Path) -> Iterator[str]:
    if engine == "duckdb":
        yield f"duckdb:///{tmp_path / 'contract.db'}"
    elif engine == "postgres":
        with postgres_schema_url() as postgres:
            yield postgres
    elif engine == "oracle":
        oracle = oracle_test_url()
        if oracle is None:
            pytest.skip(f"Oracle not configured: set {ORACLE_ENV}=oracle://user:password@host:1521/FREEPDB1")
        yield oracle
    else:
        # a real Kinetica when STREAMSCORE_TEST_KINETICA_URL is set, else the local stand-in
        # (tests/fakes/kinetica_server.py: the real gpudb client over HTTP; see its README)
        kinetica, _ = kinetica_url_or_standin()
        separator = "&" if "?" in kinetica else "?"
        yield f"{kinetica}{separator}schema=sst_{secrets.token_hex(5)}"


def _sql(backend: Backend, statement: str, params: list[Any]) -> list[Any]:
    """Run one statement on the backend's own connection (for test set-up and counting only)."""
    if backend.name == "duckdb":
        return list(backend.con.execute(statement, params).fetchall())  # type: ignore[attr-defined]
    if backend.name == "postgres":
        cursor = backend._connection().execute(statement.replace("?", "%s"), params)  # type: ignore[attr-defined]
        return list(cursor.fetchall()) if cursor.description else []
    if backend.name == "oracle":
        with backend._connection().cursor() as cursor:  # type: ignore[attr-defined]
            cursor.execute(re.sub(r"\?", lambda _: ":1", statement), params)
            return list(cursor.fetchall()) if cursor.description else []
    if backend.name == "kinetica":
        numbered = iter(range(1, len(params) + 1))
        # the comment lets the stand-in run a statement that is not in sql/kinetica (a comment to Kinetica)
        probe = "/* streamscore test probe */ " + re.sub(r"\?", lambda _: f"${next(numbered)}", statement)
        with backend.db.query(probe, sql_params=list(params)) as rows:  # type: ignore[attr-defined]
            return [tuple(row) for row in rows]
    pytest.skip(f"the contract suite has no SQL hook for {backend.name}")


TABLES = {
    "duckdb": {"images": "images", "predictions": "predictions"},
    "postgres": {"images": "images", "predictions": "predictions"},
    "oracle": {"images": "mnist_images", "predictions": "mnist_predictions"},
}


def _names(backend: Backend) -> dict[str, str] | None:
    if backend.name == "kinetica":
        schema = backend.schema  # type: ignore[attr-defined]
        return {"images": f"{schema}.images", "predictions": f"{schema}.predictions"}
    return TABLES.get(backend.name)


def count(backend: Backend, table: str, scope: Scope) -> int:
    """Rows of ``images`` or ``predictions`` whose image id belongs to this test."""
    names = _names(backend)
    if names is None:
        pytest.skip(f"the contract suite cannot count rows in {backend.name}")
    (row,) = _sql(backend, f"SELECT count(*) FROM {names[table]} WHERE image_id LIKE ?", [f"{scope.tag}-%"])
    return int(row[0])


def stored_roles(backend: Backend, scope: Scope) -> list[tuple[str, str]]:
    """(image id, role) of the stored predictions of this test's images, sorted."""
    names = _names(backend)
    if names is None:
        pytest.skip(f"the contract suite cannot read predictions in {backend.name}")
    rows = _sql(backend, f"SELECT image_id, role FROM {names['predictions']} WHERE image_id LIKE ?",
                [f"{scope.tag}-%"])
    return sorted((str(image_id), str(role)) for image_id, role in rows)


@contextlib.contextmanager
def forbid_label(backend: Backend, label: int) -> Iterator[None]:
    """A CHECK constraint rejecting ``label`` on the images table, for the duration of the block."""
    if not backend.transactional:
        pytest.skip(f"{backend.name} has no multi-statement transactions: nothing to roll back")
    if backend.name == "duckdb":
        # enter this block before any image is written: DuckDB cannot ALTER TABLE … ADD CHECK,
        # so the (still empty) images table is recreated with the check
        create_images = split_statements(read_sql("duckdb", "schema.sql"))[0]
        body = create_images.rstrip().removesuffix(")")
        backend.con.execute("DROP TABLE images")  # type: ignore[attr-defined]
        backend.con.execute(f"{body}, CHECK (label <> {int(label)}))")  # type: ignore[attr-defined]
        yield
    elif backend.name == "postgres":
        _sql(backend, f"ALTER TABLE images ADD CONSTRAINT ss_forbid_label CHECK (label <> {int(label)})", [])
        yield
    elif backend.name == "oracle":
        name = f"ss_forbid_{secrets.token_hex(4)}"
        _sql(backend, f"ALTER TABLE mnist_images ADD CONSTRAINT {name} CHECK (label <> {int(label)}) NOVALIDATE", [])
        try:
            yield
        finally:
            _sql(backend, f"ALTER TABLE mnist_images DROP CONSTRAINT {name}", [])
    else:
        pytest.skip(f"the contract suite cannot add a constraint in {backend.name}")


def stored_labels(backend: Backend, scope: Scope) -> dict[str, int | None]:
    """Image id → stored label of this test's images."""
    names = _names(backend)
    if names is None:
        pytest.skip(f"the contract suite cannot read images in {backend.name}")
    rows = _sql(backend, f"SELECT image_id, label FROM {names['images']} WHERE image_id LIKE ?",
                [f"{scope.tag}-%"])
    return {str(image_id): None if label is None else int(label) for image_id, label in rows}


#: the column holding when an image was stored (retention purges by it)
STORED_AT = {"duckdb": "ingested_at", "postgres": "ingested_at", "oracle": "inserted_at"}


def backdate_images(backend: Backend, image_ids: Sequence[str], seconds: int) -> None:
    """Move the stored-at time of ``image_ids`` ``seconds`` into the past (retention tests)."""
    names, column = _names(backend), STORED_AT.get(backend.name)
    if names is None or column is None:
        pytest.skip(f"the contract suite cannot backdate images in {backend.name}")
    shift = {
        "duckdb": f"{column} - to_seconds(CAST({int(seconds)} AS BIGINT))",
        "postgres": f"{column} - make_interval(secs => {int(seconds)})",
        "oracle": f"{column} - NUMTODSINTERVAL({int(seconds)}, 'SECOND')",
    }[backend.name]
    for image_id in image_ids:
        _sql(backend, f"UPDATE {names['images']} SET {column} = {shift} WHERE image_id = ?", [image_id])
    if backend.name == "oracle":
        backend._connection().commit()  # type: ignore[attr-defined]
