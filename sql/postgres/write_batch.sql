-- One batch, inside one transaction (see streamscore/backends/base.py and postgres.py).
-- ss_incoming holds the batch (one row per distinct image id), COPYed in just before.

-- 1. images, idempotent on image_id (replays are absorbed); sorted so that two writers
--    inserting overlapping ids take the index locks in the same order
INSERT INTO images (image_id, pixels, label, produced_at, src_topic, src_partition, src_offset, batch_id)
SELECT image_id, pixels, label, produced_at, src_topic, src_partition, src_offset, %(batch_id)s
FROM ss_incoming
ORDER BY image_id
ON CONFLICT (image_id) DO NOTHING;

-- 2. one call of the PL/Python function scores the whole batch as received; the predictions go
--    in idempotently (a replayed image keeps its first prediction: same model, same digit), and
--    the statement returns the batch's scores. Scoring the batch relation, rather than looking
--    up which images still need scores, keeps the cost of a batch independent of table size
--    (an anti-join against a growing predictions table was planned as a nested loop).
WITH scored AS MATERIALIZED (
    SELECT s.image_id, s.predicted, s.probabilities
    FROM streamscore_score_batch(
        ARRAY(SELECT image_id FROM ss_incoming ORDER BY image_id),
        ARRAY(SELECT pixels FROM ss_incoming ORDER BY image_id),
        %(name)s, %(version)s::integer) AS s
), stored AS (
    INSERT INTO predictions (image_id, model_name, model_version, role, predicted, probabilities, scored_at,
                             batch_id)
    SELECT image_id, %(name)s, %(version)s::integer, %(role)s, predicted, probabilities,
           %(scored_at)s::bigint, %(batch_id)s
    FROM scored
    ON CONFLICT DO NOTHING
)
SELECT image_id, predicted, probabilities, %(scored_at)s::bigint
FROM scored
ORDER BY image_id COLLATE "C";
