-- One batch, inside one transaction (see streamscore/backends/base.py and postgres.py).
-- ss_incoming holds the batch (one row per distinct image id), COPYed in just before.

-- 1. images, idempotent on image_id (replays are absorbed); sorted so that two writers
--    inserting overlapping ids take the index locks in the same order
INSERT INTO images (image_id, pixels, label, produced_at, src_topic, src_partition, src_offset, batch_id)
SELECT image_id, pixels, label, produced_at, src_topic, src_partition, src_offset, %(batch_id)s
FROM ss_incoming
ORDER BY image_id
ON CONFLICT (image_id) DO NOTHING;

-- 2. the batch's images this version has not scored yet, scored by ONE call of the PL/Python
--    function (pixels come from images: a replayed id keeps its first-written pixels)
WITH todo AS MATERIALIZED (
    SELECT i.image_id, i.pixels
    FROM images AS i
    JOIN ss_incoming AS s ON s.image_id = i.image_id
    WHERE NOT EXISTS (
        SELECT 1 FROM predictions AS p
        WHERE p.image_id = i.image_id AND p.model_name = %(name)s
          AND p.model_version = %(version)s::integer AND p.role = %(role)s)
)
INSERT INTO predictions (image_id, model_name, model_version, role, predicted, probabilities, scored_at, batch_id)
SELECT s.image_id, %(name)s, %(version)s::integer, %(role)s, s.predicted, s.probabilities,
       %(scored_at)s::bigint, %(batch_id)s
FROM streamscore_score_batch(
    ARRAY(SELECT image_id FROM todo ORDER BY image_id),
    ARRAY(SELECT pixels FROM todo ORDER BY image_id),
    %(name)s, %(version)s::integer) AS s
ON CONFLICT DO NOTHING;

-- 3. what the database holds for the batch: one row per distinct image id, in byte order
SELECT p.image_id, p.predicted, p.probabilities, p.scored_at
FROM predictions AS p
JOIN ss_incoming AS s ON s.image_id = p.image_id
WHERE p.model_name = %(name)s AND p.model_version = %(version)s::integer AND p.role = %(role)s
ORDER BY p.image_id COLLATE "C";
