-- The two in-DuckDB forward passes (streamscore/backends/duckdb/scoring.py). {source} is the
-- table holding the images to score (ss_incoming or ss_pixels: image_id, pixels, raw); both
-- leave ss_scores(image_id, probabilities).

-- name: score_with_udf
-- scorer=udf: the vectorized Arrow UDF over the images' raw bytes
CREATE OR REPLACE TEMP TABLE ss_scores AS
SELECT image_id, streamscore_forward(raw, $name, $version) AS probabilities
FROM {source};

-- name: score_pixels_with_udf
-- Score pixels without storing anything (canary checks, agreement checks, bench): the UDF over
-- ss_pixels (position = row number), in input order.
SELECT streamscore_forward(raw, $name, $version) AS probabilities
FROM ss_pixels
ORDER BY position;

-- name: sql_input
-- scorer=sql: the pure-SQL forward pass, one statement per layer inside the batch transaction.
-- Mirrors streamscore.model.reference.forward:
--   x = pixels * input_scale
CREATE OR REPLACE TEMP TABLE ss_act AS
SELECT image_id, list_transform(pixels, lambda p: (p * $input_scale)::FLOAT) AS x
FROM {source};

-- name: sql_layer
--   z = x @ W + b   (one row per image and output unit: the unit's weights dotted with x)
CREATE OR REPLACE TEMP TABLE ss_z AS
SELECT a.image_id, l.unit, list_inner_product(a.x, l.weights) + l.bias AS z
FROM ss_act AS a
JOIN model_layers AS l ON l.name = $name AND l.version = $version AND l.layer = $layer;

-- name: sql_activate
--   x = act(z)   (zmax and zsum are per image, for softmax); {activation} is one expression
--   of activations.sql (activation_<name>, chosen by the model's layer, never user input)
CREATE OR REPLACE TEMP TABLE ss_act AS
SELECT image_id, list(({activation})::FLOAT ORDER BY unit) AS x
FROM (
    SELECT image_id, unit, z, exp(z - zmax) / sum(exp(z - zmax)) OVER (PARTITION BY image_id) AS zsoft
    FROM (SELECT image_id, unit, z, max(z) OVER (PARTITION BY image_id) AS zmax FROM ss_z)
)
GROUP BY image_id;

-- name: sql_scores
CREATE OR REPLACE TEMP TABLE ss_scores AS
SELECT image_id, x::FLOAT[10] AS probabilities FROM ss_act;

-- name: scores_in_input_order
-- score() with scorer=sql: image ids of ss_pixels are row numbers
SELECT probabilities FROM ss_scores ORDER BY image_id::BIGINT;
