-- Staged rows of batches that crashed between scoring and merging (their replay used a
-- new batch id); run at start-up.
DELETE FROM {schema}.prediction_stage WHERE scored_at < $1
