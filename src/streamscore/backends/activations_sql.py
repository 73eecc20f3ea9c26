"""The activations as SQL expressions, for the pure-SQL forward passes (DuckDB's ``scorer=sql``
and the PostgreSQL benchmark). ``z`` is a unit's pre-activation, ``zsoft`` the softmax of ``z``
within its image. A fixed list: these strings are code, never user input.
"""

ACTIVATION_SQL = {
    "sigmoid": "CASE WHEN z >= 0 THEN 1 / (1 + exp(-z)) ELSE exp(z) / (1 + exp(z)) END",
    "relu": "greatest(z, 0)",
    "tanh": "tanh(z)",
    "identity": "z",
    "softmax": "zsoft",
}
