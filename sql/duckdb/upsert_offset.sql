INSERT INTO consumer_offsets (group_id, topic, "partition", next_offset, updated_at)
VALUES ($group_id, $topic, $partition, $next_offset, current_timestamp)
ON CONFLICT (group_id, topic, "partition")
DO UPDATE SET next_offset = excluded.next_offset, updated_at = excluded.updated_at;
