-- Drop a batch's staged UDF output (after the merge, and before a retry of the batch).
DELETE FROM {schema}.prediction_stage WHERE batch_id = $1
