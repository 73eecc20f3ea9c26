-- One batch, inside one transaction (see streamscore/backends/base.py and duckdb/backend.py).
-- ss_incoming is the batch registered from Arrow (distinct image ids); ss_scores(image_id,
-- probabilities) is what the forward pass (scoring.sql) left for it.

-- name: insert_images
-- 1. images, idempotent on image_id (replays are absorbed by the primary key)
INSERT INTO images (image_id, pixels, label, produced_at, src_topic, src_partition, src_offset, batch_id)
SELECT image_id, pixels, label, produced_at, src_topic, src_partition, src_offset, $batch_id
FROM ss_incoming
ON CONFLICT DO NOTHING;

-- name: store_predictions
-- 2. predictions from ss_scores, argmax as the predicted digit, under the model's role.
-- A replayed image keeps its first prediction (primary key); the same model gives the same digit.
INSERT INTO predictions (image_id, model_name, model_version, role, predicted, probabilities, scored_at, batch_id)
SELECT image_id, $name, $version, $role,
       list_position(probabilities, list_max(probabilities)) - 1,
       probabilities, $scored_at, $batch_id
FROM ss_scores
ON CONFLICT DO NOTHING;

-- name: upsert_offsets
-- 3. the next offset of one (topic, partition); offsets never move backwards: a late replay
-- of an old batch keeps the stored offset
INSERT INTO consumer_offsets (group_id, topic, "partition", next_offset, updated_at)
VALUES ($group_id, $topic, $partition, $next_offset, current_timestamp)
ON CONFLICT (group_id, topic, "partition")
DO UPDATE SET next_offset = greatest(consumer_offsets.next_offset, excluded.next_offset),
              updated_at = excluded.updated_at;

-- name: batch_predictions
-- the batch's scores as computed in this pass: one row per distinct image id of the batch
SELECT image_id, list_position(probabilities, list_max(probabilities)) - 1 AS predicted, probabilities
FROM ss_scores
ORDER BY image_id;

-- name: select_offsets
SELECT "partition", next_offset FROM consumer_offsets WHERE group_id = $group_id AND topic = $topic;
