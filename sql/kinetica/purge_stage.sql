-- Staged rows of batches that crashed between scoring and merging (their replay used a
-- new batch id); run at start-up. $1 is epoch milliseconds: LONG() turns the TIMESTAMP
-- into epoch ms, so the comparison is BIGINT < BIGINT (no implicit TIMESTAMP cast).
DELETE FROM {schema}.prediction_stage WHERE LONG(scored_at) < $1
