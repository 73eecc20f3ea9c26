-- One batch, inside one transaction (see streamscore/backends/base.py).
-- ss_incoming is the batch registered from Arrow; ss_scores holds image_id, probabilities.

-- 1. images, idempotent on image_id (replays are absorbed)
INSERT INTO images (image_id, pixels, label, produced_at, src_topic, src_partition, src_offset, batch_id)
SELECT image_id, pixels, label, produced_at, src_topic, src_partition, src_offset, $batch_id
FROM ss_incoming
ON CONFLICT DO NOTHING;

-- 2. the images of this batch this version has not scored yet
CREATE OR REPLACE TEMP TABLE ss_todo AS
SELECT i.image_id, i.pixels
FROM images AS i
WHERE i.image_id IN (SELECT image_id FROM ss_incoming)
  AND NOT EXISTS (
      SELECT 1 FROM predictions AS p
      WHERE p.image_id = i.image_id AND p.model_name = $name AND p.model_version = $version
        AND p.role = 'champion');
