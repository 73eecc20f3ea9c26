"""The numpy reference forward pass. Every in-database scorer is checked against it.

``x = pixels * input_scale``, then for each layer ``x = act(x @ W + b)``. Layered artifacts
(:mod:`streamscore.model.layers`) add conv2d (the same product over im2col patches), maxpool2d and
flatten; :func:`forward_layers` runs them in chunks of images so memory stays bounded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from streamscore.model.layers import Layer

F32 = npt.NDArray[np.float32]
#: images per chunk of a layered forward pass: conv patches of 1,000 images are about 70 MB
CHUNK = 1000


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


def im2col(x: F32, kernel: tuple[int, int]) -> F32:
    """Patches (n, h', w', kh·kw·c) of images (n, h, w, c), ordered kernel row, column, channel."""
    kh, kw = kernel
    rows, cols = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    return np.concatenate(
        [x[:, i:i + rows, j:j + cols, :] for i in range(kh) for j in range(kw)], axis=3
    )


def conv2d(x: F32, w: F32, b: F32, kernel: tuple[int, int], activation: str) -> F32:
    """act(im2col(x) @ W + b) as images (n, h', w', filters).

    The product is one 2-D matrix product computed as ``(Wᵀ · patchesᵀ)ᵀ``: the same sums, but
    OpenBLAS runs it several times faster when the inner dimension is as short as a first
    layer's 9 (a 4-D ``@`` would even run one small product per image row).
    """
    patches = im2col(x, kernel)
    n, rows, cols, inner = patches.shape
    product = np.empty((n * rows * cols, w.shape[1]), np.float32)
    np.add((w.T @ patches.reshape(-1, inner).T).T, b, out=product)
    return ACTIVATIONS[activation](product).reshape(n, rows, cols, w.shape[1])


def maxpool(x: F32, pool: tuple[int, int]) -> F32:
    """Max over non-overlapping (ph, pw) windows of (n, h, w, c); the remainder rows/columns drop."""
    ph, pw = pool
    rows, cols = x.shape[1] // ph, x.shape[2] // pw
    # the element-wise max of the ph·pw strided views: faster than a max over a reshaped copy
    result: F32 = x[:, 0:rows * ph:ph, 0:cols * pw:pw, :].copy()
    for i in range(ph):
        for j in range(pw):
            if i or j:
                np.maximum(result, x[:, i:rows * ph:ph, j:cols * pw:pw, :], out=result)
    return result


def forward_layers(
    pixels: npt.NDArray[np.uint8],
    layers: Sequence[Layer],
    weights: Sequence[F32],
    biases: Sequence[F32],
    input_scale: float,
) -> F32:
    """Class probabilities (n, outputs) of a layered net, computed :data:`CHUNK` images at a time."""
    parts = [_forward_chunk(pixels[start:start + CHUNK], layers, weights, biases, input_scale)
             for start in range(0, len(pixels), CHUNK)]
    if not parts:
        return np.zeros((0, weights[-1].shape[1]), np.float32)
    return np.concatenate(parts)


def _forward_chunk(
    pixels: npt.NDArray[np.uint8], layers: Sequence[Layer], weights: Sequence[F32], biases: Sequence[F32],
    input_scale: float,
) -> F32:
    x: F32 = pixels.astype(np.float32) * np.float32(input_scale)
    if layers[0].type != "dense":
        x = x.reshape(-1, 28, 28, 1)
    arrays = iter(zip(weights, biases, strict=True))
    for layer in layers:
        if layer.type == "conv2d":
            w, b = next(arrays)
            x = conv2d(x, w, b, layer.kernel, layer.activation)
        elif layer.type == "maxpool2d":
            x = maxpool(x, layer.pool)
        elif layer.type == "flatten":
            x = x.reshape(len(x), -1)
        else:
            w, b = next(arrays)
            x = ACTIVATIONS[layer.activation](x @ w + b)
    return x
