-- The activations as SQL expressions for the pure-SQL forward pass (statement sql_activate /
-- bench_activate fills its {activation} with one of them). z is a unit's pre-activation,
-- zsoft the softmax of z within its image. Chosen by the model's layer, never user input.

-- name: activation_sigmoid
CASE WHEN z >= 0 THEN 1 / (1 + exp(-z)) ELSE exp(z) / (1 + exp(z)) END

-- name: activation_relu
greatest(z, 0)

-- name: activation_tanh
tanh(z)

-- name: activation_identity
z

-- name: activation_softmax
zsoft
