SELECT model_version FROM {schema}.models WHERE model_name = $1 ORDER BY model_version
