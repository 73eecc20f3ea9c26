-- Scratch rows of Backend.score live for one call only.
DELETE FROM {schema}.score_scratch WHERE batch_id = $1
