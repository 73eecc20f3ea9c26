-- The pure-SQL forward pass, kept for `streamscore bench` only: it measures how far plain SQL
-- is from the PL/Python scorer (docs/postgres.md has the figure; it was too slow to ship).
-- Run by streamscore.backends.postgres.bench.score_with_sql; {activation} is one expression from a
-- fixed list there (never user input), over z (pre-activation) and zsoft (softmax of z per image).
-- Mirrors streamscore.model.reference.forward.

-- name: bench_todo
-- the images to score
CREATE TEMP TABLE ss_todo ON COMMIT DROP AS
SELECT image_id, pixels FROM images WHERE image_id = ANY(%(ids)s);

-- name: bench_weights
--   the weights in long format: W[i][j] of each layer as one row
CREATE TEMP TABLE ss_w ON COMMIT DROP AS
SELECT l.layer, (u.k - 1) / l.outputs AS i, mod(u.k - 1, l.outputs) AS j, u.w
FROM model_layers AS l, unnest(l.weights) WITH ORDINALITY AS u (w, k)
WHERE l.name = %(name)s AND l.version = %(version)s::integer;

-- name: bench_biases
CREATE TEMP TABLE ss_b ON COMMIT DROP AS
SELECT l.layer, (u.j - 1)::integer AS j, u.b
FROM model_layers AS l, unnest(l.biases) WITH ORDINALITY AS u (b, j)
WHERE l.name = %(name)s AND l.version = %(version)s::integer;

-- name: bench_pixels
--   x = pixels * input_scale (zero pixels add nothing to x @ W and are left out)
CREATE TEMP TABLE ss_x ON COMMIT DROP AS
SELECT t.image_id, g.i, get_byte(t.pixels, g.i) * %(input_scale)s::double precision AS x
FROM ss_todo AS t, generate_series(0, 783) AS g (i)
WHERE get_byte(t.pixels, g.i) <> 0;

-- name: bench_layer
--   z = x @ W + b   (one row per image and output unit)
CREATE TEMP TABLE ss_z ON COMMIT DROP AS
SELECT x.image_id, w.j, sum(x.x * w.w) + b.b AS z
FROM ss_x AS x
JOIN ss_w AS w ON w.layer = %(layer)s::integer AND w.i = x.i
JOIN ss_b AS b ON b.layer = w.layer AND b.j = w.j
GROUP BY x.image_id, w.j, b.b;

-- name: bench_drop_x
DROP TABLE ss_x;

-- name: bench_activate
--   x = act(z)   (zmax and the sum are per image, for softmax)
CREATE TEMP TABLE ss_x ON COMMIT DROP AS
SELECT image_id, j AS i, {activation} AS x
FROM (
    SELECT image_id, j, z, exp(z - zmax) / sum(exp(z - zmax)) OVER (PARTITION BY image_id) AS zsoft
    FROM (SELECT image_id, j, z, max(z) OVER (PARTITION BY image_id) AS zmax FROM ss_z) AS m
) AS s;

-- name: bench_drop_z
DROP TABLE ss_z;

-- name: bench_collect
SELECT image_id, array_agg(x ORDER BY i) FROM ss_x GROUP BY image_id;

-- name: bench_truncate_images
TRUNCATE images;

-- name: bench_insert_one
-- the executemany ingest path the benchmark compares COPY with
INSERT INTO images (image_id, pixels, label, produced_at, src_topic, src_partition, src_offset, batch_id)
VALUES (%s, %s, %s, %s, %s, %s, %s, 'executemany') ON CONFLICT (image_id) DO NOTHING;
