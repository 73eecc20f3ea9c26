-- One batch, inside one transaction (see streamscore/backends/base.py and postgres/backend.py).

-- name: copy_images
-- 1. the fast path: the batch's distinct images, sorted by image_id (concurrent writers take the
--    index locks in one order), binary COPY straight into images inside a savepoint. An id that
--    is already stored fails it with a unique violation: the savepoint is rolled back and the
--    batch takes the staging path below (copy_staging, insert_images, remove_conflicts).
COPY images (image_id, pixels, label, produced_at, src_topic, src_partition, src_offset, batch_id)
FROM STDIN (FORMAT BINARY);

-- name: score_copied
-- 2. (fast path) as score_and_store, over the images COPYed above, looked up by their ids
--    (%(image_ids)s, sorted) on the primary key.
WITH scored AS MATERIALIZED (
    SELECT s.image_id, s.predicted, s.probabilities
    FROM streamscore_score_batch(
        %(image_ids)s::text[],
        ARRAY(SELECT i.pixels
              FROM unnest(%(image_ids)s::text[]) WITH ORDINALITY AS u (image_id, n)
              JOIN images AS i ON i.image_id = u.image_id
              ORDER BY u.n),
        %(name)s, %(version)s::integer) AS s
), stored AS (
    INSERT INTO predictions (image_id, model_name, model_version, role, predicted, probabilities, scored_at,
                             batch_id)
    SELECT image_id, %(name)s, %(version)s::integer, %(role)s, predicted, probabilities,
           %(scored_at)s::bigint, %(batch_id)s
    FROM scored
    ON CONFLICT DO NOTHING
)
SELECT image_id, predicted, probabilities, %(scored_at)s::bigint
FROM scored
ORDER BY image_id COLLATE "C";

-- name: copy_staging
-- the batch's distinct images, binary COPY into the session's staging table (column types:
-- STAGING_TYPES in streamscore/backends/postgres/statements.py, in this order)
COPY ss_incoming (image_id, pixels, label, produced_at, src_topic, src_partition, src_offset)
FROM STDIN (FORMAT BINARY);

-- name: insert_images
-- 1. images, idempotent on image_id (replays are absorbed); sorted so that two writers
--    inserting overlapping ids take the index locks in the same order. Returns the ids the
--    insert did NOT add (already stored): none on a batch of new ids, so the id-conflict
--    check below runs only when there is something to compare.
WITH inserted AS (
    INSERT INTO images (image_id, pixels, label, produced_at, src_topic, src_partition, src_offset, batch_id)
    SELECT image_id, pixels, label, produced_at, src_topic, src_partition, src_offset, %(batch_id)s
    FROM ss_incoming
    ORDER BY image_id
    ON CONFLICT (image_id) DO NOTHING
    RETURNING image_id
)
SELECT s.image_id FROM ss_incoming AS s
WHERE NOT EXISTS (SELECT 1 FROM inserted AS i WHERE i.image_id = s.image_id);

-- name: remove_conflicts
-- 1b. (only for ids the insert did not add) an id stored with other content (pixels or label)
--     is an id-conflict: it leaves the staging table, so it is neither scored nor returned; the
--     stored row is untouched. One primary-key lookup per id; a separate statement, so that rows
--     a concurrent writer committed while the insert waited are visible here.
DELETE FROM ss_incoming AS s
USING images AS i
WHERE s.image_id = ANY(%(image_ids)s::text[])
  AND i.image_id = s.image_id
  AND (i.pixels <> s.pixels OR i.label IS DISTINCT FROM s.label)
RETURNING s.image_id;

-- name: score_and_store
-- 2. one call of the PL/Python function scores the whole batch as received; the predictions go
--    in idempotently under the model's role (a replayed image keeps its first prediction: same
--    model, same digit), and the statement returns the batch's scores with this pass's time.
--    Scoring the batch relation, rather than looking up which images still need scores, keeps
--    the cost of a batch independent of table size (an anti-join against a growing predictions
--    table was planned as a nested loop).
WITH scored AS MATERIALIZED (
    SELECT s.image_id, s.predicted, s.probabilities
    FROM streamscore_score_batch(
        ARRAY(SELECT image_id FROM ss_incoming ORDER BY image_id),
        ARRAY(SELECT pixels FROM ss_incoming ORDER BY image_id),
        %(name)s, %(version)s::integer) AS s
), stored AS (
    INSERT INTO predictions (image_id, model_name, model_version, role, predicted, probabilities, scored_at,
                             batch_id)
    SELECT image_id, %(name)s, %(version)s::integer, %(role)s, predicted, probabilities,
           %(scored_at)s::bigint, %(batch_id)s
    FROM scored
    ON CONFLICT DO NOTHING
)
SELECT image_id, predicted, probabilities, %(scored_at)s::bigint
FROM scored
ORDER BY image_id COLLATE "C";

-- name: score_set
-- 2'. (several versions per batch: Backend.write_set) the images stored above, looked up by their
--     ids (%(image_ids)s, sorted), scored by every version of the serving set in ONE statement: one
--     call of the per-model function per version (LATERAL over %(versions)s / %(roles)s), every row
--     stored under its own version and role; when members are given, the served ensemble row is
--     the mean of their probabilities per class, taken here, under role 'ensemble' and
--     %(ensemble_version)s (the newest member). Returns the served and shadow rows (not members').
WITH batch AS MATERIALIZED (
    SELECT %(image_ids)s::text[] AS ids,
           ARRAY(SELECT i.pixels
                 FROM unnest(%(image_ids)s::text[]) WITH ORDINALITY AS u (image_id, n)
                 JOIN images AS i ON i.image_id = u.image_id
                 ORDER BY u.n) AS pixels
), scored AS MATERIALIZED (
    SELECT m.version, m.role, s.image_id, s.predicted, s.probabilities
    FROM batch
    CROSS JOIN unnest(%(versions)s::integer[], %(roles)s::text[]) AS m (version, role)
    CROSS JOIN LATERAL streamscore_score_batch(batch.ids, batch.pixels, %(name)s, m.version) AS s
), mean AS MATERIALIZED (
    SELECT image_id, array_agg(p ORDER BY k) AS probabilities
    FROM (SELECT s.image_id, u.k, avg(u.p)::real AS p
          FROM scored AS s
          CROSS JOIN LATERAL unnest(s.probabilities) WITH ORDINALITY AS u (p, k)
          WHERE s.role = 'member'
          GROUP BY s.image_id, u.k) AS per_class
    GROUP BY image_id
), served AS MATERIALIZED (
    SELECT version, role, image_id, predicted, probabilities FROM scored WHERE role <> 'member'
    UNION ALL
    SELECT %(ensemble_version)s::integer, 'ensemble', image_id,
           (SELECT (u.k - 1)::smallint FROM unnest(mean.probabilities) WITH ORDINALITY AS u (p, k)
            ORDER BY u.p DESC, u.k LIMIT 1),
           probabilities
    FROM mean
), stored AS (
    INSERT INTO predictions (image_id, model_name, model_version, role, predicted, probabilities, scored_at,
                             batch_id)
    SELECT image_id, %(name)s, version, role, predicted, probabilities, %(scored_at)s::bigint, %(batch_id)s
    FROM (SELECT * FROM served
          UNION ALL
          SELECT version, role, image_id, predicted, probabilities FROM scored WHERE role = 'member') AS every_row
    ON CONFLICT DO NOTHING
)
SELECT version, role, image_id, predicted, probabilities, %(scored_at)s::bigint
FROM served
ORDER BY role, version, image_id COLLATE "C";

-- name: upsert_offsets
-- 3. next offset per (topic, partition) of one consumer group, one statement for the whole
--    batch; offsets never move backwards: a late replay of an old batch keeps the stored offset
INSERT INTO consumer_offsets (group_id, topic, "partition", next_offset, updated_at)
SELECT %(group_id)s, t.topic, t.part, t.next_offset, now()
FROM unnest(%(topics)s::text[], %(partitions)s::integer[], %(offsets)s::bigint[]) AS t (topic, part, next_offset)
ON CONFLICT (group_id, topic, "partition")
DO UPDATE SET next_offset = GREATEST(consumer_offsets.next_offset, excluded.next_offset),
              updated_at = excluded.updated_at;

-- name: select_offsets
SELECT "partition", next_offset FROM consumer_offsets WHERE group_id = %(group_id)s AND topic = %(topic)s;

-- name: score_pixels
-- Class probabilities for images passed as arrays; nothing is written (the caller rolls back).
SELECT s.image_id, s.probabilities
FROM streamscore_score_batch(%(image_ids)s::text[], %(pixels)s::bytea[], %(name)s, %(version)s::integer) AS s;
