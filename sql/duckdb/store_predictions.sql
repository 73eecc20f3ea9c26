-- 2. predictions from ss_scores (image_id, probabilities), argmax as the predicted digit.
-- A replayed image keeps its first prediction (primary key); the same model gives the same digit.
INSERT INTO predictions (image_id, model_name, model_version, role, predicted, probabilities, scored_at, batch_id)
SELECT image_id, $name, $version, $role,
       list_position(probabilities, list_max(probabilities)) - 1,
       probabilities, $scored_at, $batch_id
FROM ss_scores
ON CONFLICT DO NOTHING;
