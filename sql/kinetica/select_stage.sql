-- Probabilities of a scratch scoring run (Backend.score), read before they are deleted.
SELECT image_id, p0, p1, p2, p3, p4, p5, p6, p7, p8, p9
FROM {schema}.prediction_stage
WHERE batch_id = $1
