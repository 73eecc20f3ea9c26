SELECT layer, n_in, n_out, activation, weights, biases
FROM {schema}.model_layers
WHERE model_name = $1 AND model_version = $2
ORDER BY layer
