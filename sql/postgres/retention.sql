-- Retention (`streamscore db purge --older-than …`): images stored more than
-- older_than_s seconds ago (images.ingested_at) and their predictions, in one statement.
-- Offsets and models are never purged: a purged image is not consumed again.

-- name: purge_older_than
WITH gone AS (
    DELETE FROM images
    WHERE ingested_at < now() - make_interval(secs => %(older_than_s)s)
    RETURNING image_id
), gone_predictions AS (
    DELETE FROM predictions AS p
    USING gone AS g
    WHERE p.image_id = g.image_id
    RETURNING 1
)
SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM gone_predictions);
