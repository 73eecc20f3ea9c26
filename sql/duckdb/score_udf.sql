-- Score pixels without storing anything (canary checks, agreement checks, bench): the vectorized
-- UDF over the images' raw bytes in ss_pixels (position = row number), in input order.
SELECT streamscore_forward(raw, $name, $version) AS probabilities
FROM ss_pixels
ORDER BY position
