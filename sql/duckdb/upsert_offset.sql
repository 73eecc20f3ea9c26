INSERT INTO consumer_offsets (group_id, topic, "partition", next_offset, updated_at)
VALUES ($group_id, $topic, $partition, $next_offset, current_timestamp)
ON CONFLICT (group_id, topic, "partition")
-- offsets never move backwards: a late replay of an old batch keeps the stored offset
DO UPDATE SET next_offset = greatest(consumer_offsets.next_offset, excluded.next_offset),
              updated_at = excluded.updated_at;
