"""Read what a drill left in the database: prediction rows and image ids (DuckDB file, PostgreSQL schema)."""

from __future__ import annotations

from typing import Any

from streamscore.backends.url import BackendURL


def duckdb_rows(url: str) -> tuple[list[tuple[str, int]], set[str]]:
    """Prediction rows and image ids of a DuckDB file (no consumer may hold it)."""
    import duckdb

    path = BackendURL.parse(url).path.removeprefix("/")
    with duckdb.connect(path, read_only=True) as con:
        rows = [(str(i), int(v)) for i, v in con.execute("SELECT image_id, model_version FROM predictions").fetchall()]
        images = {str(i) for (i,) in con.execute("SELECT image_id FROM images").fetchall()}
    return rows, images


def postgres_connect(url: str) -> Any:
    import psycopg

    from streamscore.backends.postgres.statements import conninfo, set_search_path

    parsed = BackendURL.parse(url)
    conn = psycopg.connect(conninfo(parsed), autocommit=True)
    schema = parsed.options.get("schema")
    if schema:
        conn.execute(set_search_path(schema))
    return conn


def postgres_rows(url: str) -> tuple[list[tuple[str, int]], set[str]]:
    with postgres_connect(url) as conn:
        rows = [(str(i), int(v)) for i, v in conn.execute("SELECT image_id, model_version FROM predictions")]
        images = {str(i) for (i,) in conn.execute("SELECT image_id FROM images")}
    return rows, images
