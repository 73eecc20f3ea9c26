-- Model versions: a head row in models, the weights as rows of model_layers (data, not code).

-- name: select_model_digest
SELECT sha256 FROM models WHERE name = $name AND version = $version;

-- name: insert_model_layers
-- ss_model_rows is the artifact's model_layers rows registered from Arrow
INSERT INTO model_layers SELECT * FROM ss_model_rows;

-- name: insert_model
INSERT INTO models (name, version, activations, input_scale, sha256, manifest)
VALUES ($name, $version, $activations, $input_scale, $sha256, $manifest);

-- name: select_versions
SELECT version FROM models WHERE name = $name ORDER BY version;

-- name: select_model_head
SELECT activations, input_scale, sha256, manifest FROM models WHERE name = $name AND version = $version;

-- name: select_model_layers
SELECT layer, unit, weights, bias FROM model_layers
WHERE name = $name AND version = $version
ORDER BY layer, unit;

-- name: select_lifecycle
SELECT revision, state FROM model_lifecycle WHERE name = $name;

-- name: upsert_lifecycle
-- a lower revision never replaces a higher one (a late writer cannot roll the state back)
INSERT INTO model_lifecycle (name, revision, state, updated_at)
VALUES ($name, $revision, $state, current_timestamp)
ON CONFLICT (name) DO UPDATE SET revision = excluded.revision, state = excluded.state, updated_at = excluded.updated_at
WHERE excluded.revision > model_lifecycle.revision;
