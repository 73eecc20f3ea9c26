-- Per-connection and schema-management statements of the PostgreSQL backend. {schema} is the
-- only substitution: an identifier, composed with psycopg.sql.Identifier (never a value).

-- name: set_search_path
SET search_path TO {schema};

-- name: create_schema
CREATE SCHEMA IF NOT EXISTS {schema};

-- name: drop_schema
-- scratch schemas of tests and `streamscore bench` (Backend.drop_schema)
DROP SCHEMA IF EXISTS {schema} CASCADE;

-- name: schema_exists
SELECT 1 FROM pg_namespace WHERE nspname = %(schema)s;

-- name: lock_schema_changes
-- held until the end of the init_schema transaction: N consumers starting together do not race
SELECT pg_advisory_xact_lock(%(key)s);

-- name: create_staging
-- The per-session staging table a batch is COPYed into (FORMAT BINARY), created once per
-- connection. ON COMMIT DELETE ROWS: it is empty again after every transaction.
CREATE TEMP TABLE IF NOT EXISTS ss_incoming (
    image_id      text,
    pixels        bytea,
    label         smallint,
    produced_at   bigint,
    src_topic     text,
    src_partition integer,
    src_offset    bigint
) ON COMMIT DELETE ROWS;

-- name: select_object_digest
-- the sha256 of an installed in-database code file, if the object exists
SELECT o.sha256 FROM schema_objects AS o
WHERE o.name = %(name)s AND to_regprocedure(%(signature)s) IS NOT NULL;

-- name: upsert_object_digest
INSERT INTO schema_objects (name, sha256) VALUES (%(name)s, %(sha256)s)
ON CONFLICT (name) DO UPDATE SET sha256 = excluded.sha256, installed_at = now();

-- name: report_blas
-- Which BLAS the server's numpy runs on (the scorer's matrix products): the shared libraries
-- mapped into this server process once numpy is imported, plus numpy's build configuration
-- where /proc is not available. Sent as one NOTICE; nothing is stored. Run at init_schema.
DO $$
import json
import os
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as streamscore_score_batch: set before numpy's first import
import numpy
KEYWORDS = ("blas", "mkl", "lapack", "blis", "atlas", "accelerate")
libraries = set()
try:
    with open("/proc/self/maps") as maps:
        for line in maps:
            parts = line.split(None, 5)
            if len(parts) == 6 and any(k in parts[5].rsplit("/", 1)[-1].lower() for k in KEYWORDS):
                libraries.add(parts[5].strip())
except OSError:
    pass
try:
    build = str(numpy.show_config(mode="dicts")["Build Dependencies"]["blas"].get("name", ""))
except Exception:
    try:
        build = ",".join(numpy.__config__.get_info("blas_opt_info").get("libraries", []))
    except Exception:
        build = ""
plpy.notice("streamscore-blas " + json.dumps(
    {"numpy": numpy.__version__, "libraries": sorted(libraries), "build": build}))
$$ LANGUAGE plpython3u;

-- name: select_cached_models
-- the model versions whose weights this session's scorer holds (GD), least recently used first
SELECT schema_name, model_name, model_version FROM streamscore_cached_models();
