-- The pure-SQL forward pass, kept for `streamscore bench` only: it measures how far plain SQL
-- is from the PL/Python scorer (docs/postgres.md has the figure; it was too slow to ship).
-- Run by streamscore.bench.postgres_ingest.score_with_sql; {activation} is one expression from a
-- fixed list there (never user input), over z (pre-activation) and zsoft (softmax of z per image).
-- Mirrors streamscore.model.reference.forward:
--   the weights in long format: W[i][j] of each layer as one row
CREATE TEMP TABLE ss_w ON COMMIT DROP AS
SELECT l.layer, (u.k - 1) / l.outputs AS i, mod(u.k - 1, l.outputs) AS j, u.w
FROM model_layers AS l, unnest(l.weights) WITH ORDINALITY AS u (w, k)
WHERE l.name = %(name)s AND l.version = %(version)s::integer;
CREATE TEMP TABLE ss_b ON COMMIT DROP AS
SELECT l.layer, (u.j - 1)::integer AS j, u.b
FROM model_layers AS l, unnest(l.biases) WITH ORDINALITY AS u (b, j)
WHERE l.name = %(name)s AND l.version = %(version)s::integer;
--   x = pixels * input_scale (zero pixels add nothing to x @ W and are left out)
CREATE TEMP TABLE ss_x ON COMMIT DROP AS
SELECT t.image_id, g.i, get_byte(t.pixels, g.i) * %(input_scale)s::double precision AS x
FROM ss_todo AS t, generate_series(0, 783) AS g (i)
WHERE get_byte(t.pixels, g.i) <> 0;
--   z = x @ W + b   (one row per image and output unit)
CREATE TEMP TABLE ss_z ON COMMIT DROP AS
SELECT x.image_id, w.j, sum(x.x * w.w) + b.b AS z
FROM ss_x AS x
JOIN ss_w AS w ON w.layer = %(layer)s::integer AND w.i = x.i
JOIN ss_b AS b ON b.layer = w.layer AND b.j = w.j
GROUP BY x.image_id, w.j, b.b;
--   x = act(z)   (zmax and the sum are per image, for softmax)
DROP TABLE ss_x;
CREATE TEMP TABLE ss_x ON COMMIT DROP AS
SELECT image_id, j AS i, {activation} AS x
FROM (
    SELECT image_id, j, z, exp(z - zmax) / sum(exp(z - zmax)) OVER (PARTITION BY image_id) AS zsoft
    FROM (SELECT image_id, j, z, max(z) OVER (PARTITION BY image_id) AS zmax FROM ss_z) AS m
) AS s;
DROP TABLE ss_z;
