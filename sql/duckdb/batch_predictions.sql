-- the batch's scores as stored: one row per distinct image id of the batch
SELECT image_id, list_position(probabilities, list_max(probabilities)) - 1 AS predicted, probabilities
FROM ss_scores
ORDER BY image_id;
