-- What DuckDB holds in the consumer's memory (streamscore bench: memory over many swaps).

-- name: memory_in_use
-- bytes held by the buffer pool and the other DuckDB allocations of this database instance
SELECT coalesce(sum(memory_usage_bytes), 0) FROM duckdb_memory();
