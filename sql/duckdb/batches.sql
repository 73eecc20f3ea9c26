-- One batch, inside one transaction (see streamscore/backends/base.py and duckdb/backend.py).
-- ss_incoming is the batch registered from Arrow (distinct image ids); ss_scores(image_id,
-- probabilities) is what the forward pass (scoring.sql) left for it.

-- name: insert_images
-- 1. images, idempotent on image_id (replays are absorbed by the primary key); returns the ids
-- it added, so only the others (replays, reused ids) are compared with what is stored
INSERT INTO images (image_id, pixels, label, produced_at, src_topic, src_partition, src_offset, batch_id)
SELECT image_id, raw, label, produced_at, src_topic, src_partition, src_offset, $batch_id
FROM ss_incoming
ON CONFLICT DO NOTHING
RETURNING image_id;

-- name: conflicting_ids
-- 1b. of the ids the insert did not add ($ids), those stored with other content (id-conflict)
SELECT s.image_id
FROM images AS s
JOIN ss_incoming AS i ON i.image_id = s.image_id
WHERE s.image_id IN (SELECT unnest($ids))
  AND (s.pixels <> i.raw OR s.label IS DISTINCT FROM i.label);

-- name: store_predictions
-- 2. predictions from ss_scores, argmax as the predicted digit, under the model's role.
-- A replayed image keeps its first prediction (primary key); the same model gives the same digit.
INSERT INTO predictions (image_id, model_name, model_version, role, predicted, probabilities, scored_at, batch_id)
SELECT image_id, $name, $version, $role,
       list_position(probabilities, list_max(probabilities)) - 1,
       probabilities, $scored_at, $batch_id
FROM ss_scores
ON CONFLICT DO NOTHING;

-- name: create_member_scores
-- 2b. (ensembles) the members' scores of this batch, one row per member version and image
CREATE OR REPLACE TEMP TABLE ss_member_scores (version INTEGER, image_id VARCHAR, probabilities FLOAT[10]);

-- name: collect_member_scores
INSERT INTO ss_member_scores SELECT $version, image_id, probabilities FROM ss_scores;

-- name: ensemble_scores
-- 2c. the served ensemble answer: per image and class, the mean of the members' probabilities
CREATE OR REPLACE TEMP TABLE ss_scores AS
SELECT image_id, list(p ORDER BY k)::FLOAT[10] AS probabilities
FROM (
    SELECT image_id, k, avg(p)::FLOAT AS p
    FROM (SELECT image_id, unnest(range(10)) AS k, unnest(probabilities) AS p FROM ss_member_scores)
    GROUP BY image_id, k
)
GROUP BY image_id;

-- name: upsert_offsets
-- 3. the next offset of every (topic, partition) of the batch, in one statement ($topics,
-- $partitions and $next_offsets are parallel lists); offsets never move backwards: a late
-- replay of an old batch keeps the stored offset
INSERT INTO consumer_offsets (group_id, topic, "partition", next_offset, updated_at)
SELECT $group_id, unnest($topics), unnest($partitions), unnest($next_offsets), current_timestamp
ON CONFLICT (group_id, topic, "partition")
DO UPDATE SET next_offset = greatest(consumer_offsets.next_offset, excluded.next_offset),
              updated_at = excluded.updated_at;

-- name: batch_predictions
-- the batch's scores as computed in this pass: one row per distinct image id of the batch
-- (the predicted digit is the argmax, taken by the caller over the returned probabilities)
SELECT image_id, probabilities
FROM ss_scores;

-- name: select_offsets
SELECT "partition", next_offset FROM consumer_offsets WHERE group_id = $group_id AND topic = $topic;

-- name: pixels_column_type
-- files written before pixels became a BLOB hold UTINYINT[784] (see migrate_pixels_to_blob)
SELECT data_type FROM information_schema.columns
WHERE table_catalog = current_database() AND table_schema = current_schema() AND table_name = 'images'
  AND column_name = 'pixels';

-- name: migrate_pixels_to_blob
-- once per old file: the same 784 bytes, as one BLOB
ALTER TABLE images ALTER pixels TYPE BLOB
USING unhex(array_to_string(list_transform(pixels, lambda p: lpad(to_hex(p), 2, '0')), ''));
