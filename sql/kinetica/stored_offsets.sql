SELECT partition_id, next_offset
FROM {schema}.consumer_offsets
WHERE consumer_group = $1 AND topic = $2
