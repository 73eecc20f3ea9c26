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
