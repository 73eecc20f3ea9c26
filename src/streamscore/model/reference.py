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
#: images per chunk of a layered forward pass: small enough that a first conv layer's output
#: (26·26·16 floats per image, 11 MB for 256 images) stays near the CPU caches
CHUNK = 256


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


def patches(x: F32, kernel: tuple[int, int]) -> F32:
    """The im2col matrix of images held channels first (c, n, h, w), transposed: (kh·kw·c, n·h'·w').

    Row ``(i·kw + j)·c + ch`` holds pixel (row + i, column + j) of channel ch for every output
    position: the (kernel row, kernel column, channel) order of a conv2d's weights rows. Stacking
    the kh·kw shifted views builds it in one copy, already in the layout the product wants.
    """
    kh, kw = kernel
    rows, cols = x.shape[2] - kh + 1, x.shape[3] - kw + 1
    stacked = np.stack([x[:, :, i:i + rows, j:j + cols] for i in range(kh) for j in range(kw)])
    return stacked.reshape(kh * kw * x.shape[0], -1)


def conv2d(
    x: F32, w: F32, b: F32, kernel: tuple[int, int], activation: str, pool: tuple[int, int] | None = None,
) -> F32:
    """act(Wᵀ · patches + b) as images channels first (filters, n, h', w'), then ``pool`` if given.

    The same sums as ``im2col(x) @ W`` computed as one 2-D product with the long side as columns
    (OpenBLAS runs a first layer's 9-long inner dimension several times faster this way). With a
    ``pool`` (a maxpool2d right after, activation relu or identity) the max is taken before the
    bias and the activation: max(relu(z + b)) = relu(max(z) + b) exactly, since both are monotone
    and b is one number per filter; bias and activation then touch a quarter of the values.
    """
    n, rows, cols = x.shape[1], x.shape[2] - kernel[0] + 1, x.shape[3] - kernel[1] + 1
    product: F32 = (w.T @ patches(x, kernel)).reshape(w.shape[1], n, rows, cols)
    if pool is not None:
        product = maxpool(product, pool)
    product += b[:, None, None, None]
    return ACTIVATIONS[activation](product)


#: activations that commute with max-pooling exactly (monotone, computed without rounding)
POOL_FIRST = frozenset({"relu", "identity"})


def maxpool(x: F32, pool: tuple[int, int]) -> F32:
    """Max over non-overlapping (ph, pw) windows of (c, n, h, w); the remainder rows/columns drop."""
    ph, pw = pool
    rows, cols = x.shape[2] // ph, x.shape[3] // pw
    # the element-wise max of the ph·pw strided views: faster than a max over a reshaped copy
    result: F32 = x[:, :, 0:rows * ph:ph, 0:cols * pw:pw].copy()
    for i in range(ph):
        for j in range(pw):
            if i or j:
                np.maximum(result, x[:, :, i:rows * ph:ph, j:cols * pw:pw], out=result)
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
    """Images travel channels first (c, n, h, w) until flatten, which restores (row, column, channel)."""
    x: F32 = pixels.astype(np.float32) * np.float32(input_scale)
    if layers[0].type != "dense":
        x = x.reshape(1, -1, 28, 28)
    arrays = iter(zip(weights, biases, strict=True))
    pooled = False  # the maxpool2d was taken inside the conv2d before it
    for index, layer in enumerate(layers):
        if layer.type == "conv2d":
            w, b = next(arrays)
            after = layers[index + 1] if index + 1 < len(layers) else None
            pooled = after is not None and after.type == "maxpool2d" and layer.activation in POOL_FIRST
            x = conv2d(x, w, b, layer.kernel, layer.activation, after.pool if pooled and after else None)
        elif layer.type == "maxpool2d" and pooled:
            pooled = False
        elif layer.type == "maxpool2d":
            x = maxpool(x, layer.pool)
        elif layer.type == "flatten":
            x = x.transpose(1, 2, 3, 0).reshape(x.shape[1], -1)
        else:
            w, b = next(arrays)
            x = ACTIVATIONS[layer.activation](x @ w + b)
    return x
