-- One batch, inside one transaction (see streamscore/backends/base.py).
-- ss_incoming is the batch registered from Arrow (distinct image ids).

-- 1. images, idempotent on image_id (replays are absorbed by the primary key)
INSERT INTO images (image_id, pixels, label, produced_at, src_topic, src_partition, src_offset, batch_id)
SELECT image_id, pixels, label, produced_at, src_topic, src_partition, src_offset, $batch_id
FROM ss_incoming
ON CONFLICT DO NOTHING;
