"""The numpy reference forward pass. Every in-database scorer is checked against it.

``x = pixels * input_scale``, then for each layer ``x = act(x @ W + b)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]


def _sigmoid(z: F32) -> F32:
    # exp of a large negative z overflows to inf and 1/inf = 0: the right limit, no warning needed.
    with np.errstate(over="ignore"):
        result: F32 = (1.0 / (1.0 + np.exp(-z))).astype(np.float32)
    return result


def _softmax(z: F32) -> F32:
    shifted = np.exp(z - z.max(axis=1, keepdims=True))
    result: F32 = (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)
    return result


ACTIVATIONS: dict[str, Callable[[F32], F32]] = {
    "sigmoid": _sigmoid,
    "relu": lambda z: np.maximum(z, np.float32(0)),
    "tanh": lambda z: np.tanh(z).astype(np.float32),
    "softmax": _softmax,
    "identity": lambda z: z,
}


def forward(
    pixels: npt.NDArray[np.uint8],
    weights: Sequence[F32],
    biases: Sequence[F32],
    activations: Sequence[str],
    input_scale: float,
) -> F32:
    """Class probabilities (n, outputs) for uint8 pixels (n, 784), in float32."""
    x: F32 = pixels.astype(np.float32) * np.float32(input_scale)
    for w, b, act in zip(weights, biases, activations, strict=True):
        x = ACTIVATIONS[act](x @ w + b)
    return x


def predict(probabilities: F32) -> npt.NDArray[np.int64]:
    digits: npt.NDArray[np.int64] = np.argmax(probabilities, axis=1)
    return digits
