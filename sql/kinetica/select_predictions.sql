-- What the database holds for one batch after its predictions were merged.
SELECT image_id, predicted, p0, p1, p2, p3, p4, p5, p6, p7, p8, p9
FROM {schema}.predictions
WHERE batch_id = $1 AND model_name = $2 AND model_version = $3 AND role = $4
