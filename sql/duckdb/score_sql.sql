-- The pure-SQL forward pass (scorer=sql), run once per layer inside the batch transaction.
-- {source} is the table holding the images to score (image_id, pixels); {activation} is one
-- expression from a fixed list in streamscore/backends/duckdb_scoring.py (never user input).
-- Mirrors streamscore.model.reference.forward:
--   x = pixels * input_scale
CREATE OR REPLACE TEMP TABLE ss_act AS
SELECT image_id, list_transform(pixels, lambda p: (p * $input_scale)::FLOAT) AS x
FROM {source};
--   z = x @ W + b   (one row per image and output unit: the unit's weights dotted with x)
CREATE OR REPLACE TEMP TABLE ss_z AS
SELECT a.image_id, l.unit, list_inner_product(a.x, l.weights) + l.bias AS z
FROM ss_act AS a
JOIN model_layers AS l ON l.name = $name AND l.version = $version AND l.layer = $layer;
--   x = act(z)   (zmax and zsum are per image, for softmax)
CREATE OR REPLACE TEMP TABLE ss_act AS
SELECT image_id, list(({activation})::FLOAT ORDER BY unit) AS x
FROM (
    SELECT image_id, unit, z, exp(z - zmax) / sum(exp(z - zmax)) OVER (PARTITION BY image_id) AS zsoft
    FROM (SELECT image_id, unit, z, max(z) OVER (PARTITION BY image_id) AS zmax FROM ss_z)
)
GROUP BY image_id;
