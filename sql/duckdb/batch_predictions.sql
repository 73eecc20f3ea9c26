-- what the database holds for the batch after scoring: one row per distinct image id
SELECT p.image_id, p.predicted, p.probabilities, p.scored_at
FROM predictions AS p
WHERE p.model_name = $name AND p.model_version = $version AND p.role = 'champion'
  AND p.image_id IN (SELECT image_id FROM ss_incoming)
ORDER BY p.image_id;
