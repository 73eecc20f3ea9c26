-- Next offset per (topic, partition) of one consumer group, one statement for the whole batch.
INSERT INTO consumer_offsets (group_id, topic, "partition", next_offset, updated_at)
SELECT %(group_id)s, t.topic, t.part, t.next_offset, now()
FROM unnest(%(topics)s::text[], %(partitions)s::integer[], %(offsets)s::bigint[]) AS t (topic, part, next_offset)
ON CONFLICT (group_id, topic, "partition")
-- offsets never move backwards: a late replay of an old batch keeps the stored offset
DO UPDATE SET next_offset = GREATEST(consumer_offsets.next_offset, excluded.next_offset),
              updated_at = excluded.updated_at;
