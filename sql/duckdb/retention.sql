-- Retention (`streamscore db purge --older-than …`): images stored before $cutoff and their
-- predictions, in one transaction. Offsets and models are never purged: a purged image is
-- not consumed again.

-- name: purge_cutoff
-- ingested_at holds current_timestamp without its zone: compute the cut the same way, once
SELECT CAST(current_timestamp AS TIMESTAMP) - to_microseconds(CAST($older_than_us AS BIGINT));

-- name: purge_predictions
DELETE FROM predictions
WHERE image_id IN (SELECT image_id FROM images WHERE ingested_at < $cutoff);

-- name: purge_images
DELETE FROM images WHERE ingested_at < $cutoff;
