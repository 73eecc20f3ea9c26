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
