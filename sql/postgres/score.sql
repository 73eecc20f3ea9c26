-- Class probabilities for images passed as arrays; nothing is written (the caller rolls back).
SELECT s.image_id, s.probabilities
FROM streamscore_score_batch(%(image_ids)s::text[], %(pixels)s::bytea[], %(name)s, %(version)s::integer) AS s;
