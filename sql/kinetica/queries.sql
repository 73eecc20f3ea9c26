-- Every statement the Kinetica backend runs besides the schema script. `{schema}` is the only
-- substitution (an identifier, checked); values are always bind parameters ($1, $2 …).

-- name: stored_offsets
SELECT partition_id, next_offset
FROM {schema}.consumer_offsets
WHERE consumer_group = $1 AND topic = $2

-- name: installed_versions
SELECT model_version FROM {schema}.models WHERE model_name = $1 ORDER BY model_version

-- name: select_lifecycle
SELECT revision, state FROM {schema}.model_lifecycle WHERE model_name = $1

-- name: select_model
SELECT model_id, sha256, input_scale, manifest, canary_pixels
FROM {schema}.models
WHERE model_name = $1 AND model_version = $2

-- name: select_layers
SELECT layer, n_in, n_out, activation, weights, biases
FROM {schema}.model_layers
WHERE model_name = $1 AND model_version = $2
ORDER BY layer

-- name: select_images
-- The stored content of the batch's image ids that already exist (id-conflict check before the
-- upsert; a primary-key lookup). {ids} is the list of bind placeholders $1, $2 … (one per id).
SELECT image_id, pixels, label
FROM {schema}.images
WHERE image_id IN ({ids})

-- name: delete_stage
-- Drop a batch's staged UDF output (after the merge, and before a retry of the batch).
DELETE FROM {schema}.prediction_stage WHERE batch_id = $1

-- name: merge_predictions
-- Upsert one batch's staged UDF output into predictions (idempotent on the primary key).
-- Both tables are sharded on image_id, so the copy stays on each shard.
INSERT INTO {schema}.predictions /* KI_HINT_UPDATE_ON_EXISTING_PK */
    (image_id, batch_id, model_name, model_version, role, model_id, predicted,
     p0, p1, p2, p3, p4, p5, p6, p7, p8, p9, scored_at)
SELECT image_id, batch_id, model_name, model_version, role, model_id, predicted,
       p0, p1, p2, p3, p4, p5, p6, p7, p8, p9, scored_at
FROM {schema}.prediction_stage
WHERE batch_id = $1 AND model_name = $2 AND model_version = $3 AND role = $4

-- name: merge_ensemble
-- (issue 12) The served answer of an ensemble, computed here: per image of {ids} (binds from $7),
-- the mean of its members' rows (role $6, versions {versions}), the first class with the highest
-- mean as the digit, upserted under role $5 and the newest member's version $3, with scoring id
-- $1, model $2 and model id $4; scored_at is the members' latest.
INSERT INTO {schema}.predictions /* KI_HINT_UPDATE_ON_EXISTING_PK */
    (image_id, batch_id, model_name, model_version, role, model_id, predicted,
     p0, p1, p2, p3, p4, p5, p6, p7, p8, p9, scored_at)
SELECT image_id, $1, $2, $3, $5, $4,
       CASE WHEN a0 = g THEN 0 WHEN a1 = g THEN 1 WHEN a2 = g THEN 2 WHEN a3 = g THEN 3
            WHEN a4 = g THEN 4 WHEN a5 = g THEN 5 WHEN a6 = g THEN 6 WHEN a7 = g THEN 7
            WHEN a8 = g THEN 8 ELSE 9 END,
       a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, scored_at
FROM (
    SELECT image_id, a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, scored_at,
           GREATEST(a0, a1, a2, a3, a4, a5, a6, a7, a8, a9) AS g
    FROM (
        SELECT image_id,
               AVG(p0) AS a0, AVG(p1) AS a1, AVG(p2) AS a2, AVG(p3) AS a3, AVG(p4) AS a4,
               AVG(p5) AS a5, AVG(p6) AS a6, AVG(p7) AS a7, AVG(p8) AS a8, AVG(p9) AS a9,
               MAX(scored_at) AS scored_at
        FROM {schema}.predictions
        WHERE image_id IN ({ids}) AND model_name = $2 AND role = $6
          AND model_version IN ({versions})
        GROUP BY image_id
    ) AS means
) AS m

-- name: select_predictions
-- What the database holds for the batch's ids after their predictions were merged: a primary-key
-- lookup (predictions grows without bound; a batch_id filter alone would scan it). {ids} are the
-- bind placeholders $5, $6 … (one per id); $1 … $4 are the scoring id, model and role.
SELECT image_id, predicted, p0, p1, p2, p3, p4, p5, p6, p7, p8, p9
FROM {schema}.predictions
WHERE image_id IN ({ids}) AND model_name = $2 AND model_version = $3 AND role = $4 AND batch_id = $1

-- name: select_stage
-- Probabilities of a scratch scoring run (Backend.score), read before they are deleted.
SELECT image_id, p0, p1, p2, p3, p4, p5, p6, p7, p8, p9
FROM {schema}.prediction_stage
WHERE batch_id = $1

-- name: delete_inbox
-- A batch leaves the UDF's input table once its run is over (scored or failed).
DELETE FROM {schema}.score_inbox WHERE batch_id = $1

-- name: purge_inbox
-- Inbox rows of runs that crashed before deleting them; run at start-up ($1: epoch ms).
DELETE FROM {schema}.score_inbox WHERE LONG(created_at) < $1

-- name: purge_stage
-- Staged rows of batches that crashed between scoring and merging (their replay used a
-- new batch id); run at start-up. $1 is epoch milliseconds: LONG() turns the TIMESTAMP
-- into epoch ms, so the comparison is BIGINT < BIGINT (no implicit TIMESTAMP cast).
DELETE FROM {schema}.prediction_stage WHERE LONG(scored_at) < $1

-- name: count_training
SELECT COUNT(*) FROM {schema}.training_images
