SELECT model_id, sha256, input_scale, manifest, canary_pixels
FROM {schema}.models
WHERE model_name = $1 AND model_version = $2
