-- Model versions: a head row in models, the weights as rows of model_layers (data, not code).

-- name: insert_model
-- install: the model head (the weights digest doubles as the integrity check of the rows)
INSERT INTO models (name, version, activations, input_scale, sha256, manifest)
VALUES (%(name)s, %(version)s::integer, %(activations)s::text[], %(input_scale)s::double precision,
        %(sha256)s, %(manifest)s::jsonb)
ON CONFLICT (name, version) DO NOTHING;

-- name: insert_layer
-- install: one row per layer, W flattened row-major (inputs x outputs)
INSERT INTO model_layers (name, version, layer, inputs, outputs, weights, biases)
VALUES (%(name)s, %(version)s::integer, %(layer)s::integer, %(inputs)s::integer, %(outputs)s::integer,
        %(weights)s::real[], %(biases)s::real[])
ON CONFLICT (name, version, layer) DO NOTHING;

-- name: select_model_digest
-- the digest of an installed version (none when absent)
SELECT sha256 FROM models WHERE name = %(name)s AND version = %(version)s::integer;

-- name: select_versions
-- installed versions, ascending
SELECT version FROM models WHERE name = %(name)s ORDER BY version;

-- name: select_model_head
-- load: the head
SELECT activations, input_scale, sha256, manifest FROM models WHERE name = %(name)s AND version = %(version)s::integer;

-- name: select_model_layers
-- load: the layers in order
SELECT inputs, outputs, weights, biases FROM model_layers
WHERE name = %(name)s AND version = %(version)s::integer ORDER BY layer;

-- name: select_lifecycle
SELECT revision, state FROM model_lifecycle WHERE name = %(name)s;

-- name: upsert_lifecycle
-- a lower revision never replaces a higher one (a late writer cannot roll the state back)
INSERT INTO model_lifecycle (name, revision, state, updated_at)
VALUES (%(name)s, %(revision)s, %(state)s, now())
ON CONFLICT (name) DO UPDATE SET revision = excluded.revision, state = excluded.state, updated_at = excluded.updated_at
WHERE excluded.revision > model_lifecycle.revision;

-- name: select_role_check
-- the roles the predictions table accepts (databases created before ensembles allow two)
SELECT pg_get_constraintdef(oid) FROM pg_constraint
WHERE conrelid = 'predictions'::regclass AND conname = 'predictions_role_check';

-- name: drop_role_check
ALTER TABLE predictions DROP CONSTRAINT IF EXISTS predictions_role_check;

-- name: add_role_check
ALTER TABLE predictions ADD CONSTRAINT predictions_role_check
CHECK (role IN ('champion', 'shadow', 'member', 'ensemble'));

-- name: select_weights_storage
-- how model_layers.weights is stored: 'e' (external, uncompressed) since streamscore sets it, 'x' before
SELECT attstorage FROM pg_attribute WHERE attrelid = 'model_layers'::regclass AND attname = 'weights';

-- name: store_weights_uncompressed
-- float weights do not compress: pglz only spends time trying (an install of the bundled v2 took
-- 11 ms per 100,352-float layer row with the default storage, 5 ms without: docs/decisions.md)
ALTER TABLE model_layers ALTER COLUMN weights SET STORAGE EXTERNAL;
