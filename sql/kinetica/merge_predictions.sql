-- Upsert one batch's staged UDF output into predictions (idempotent on the primary key).
-- Both tables are sharded on image_id, so the copy stays on each shard.
INSERT INTO {schema}.predictions /* KI_HINT_UPDATE_ON_EXISTING_PK */
    (image_id, batch_id, model_name, model_version, role, model_id, predicted,
     p0, p1, p2, p3, p4, p5, p6, p7, p8, p9, scored_at)
SELECT image_id, batch_id, model_name, model_version, role, model_id, predicted,
       p0, p1, p2, p3, p4, p5, p6, p7, p8, p9, scored_at
FROM {schema}.prediction_stage
WHERE batch_id = $1 AND model_name = $2 AND model_version = $3 AND role = $4
