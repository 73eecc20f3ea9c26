"""The Keras networks of ``streamscore train --arch``, and their conversion into artifact layers.

* ``seed``  — Canali's 784-100 sigmoid-10 softmax (built in :mod:`streamscore.model.trainer`)
* ``dense`` — 784-256-128-10, ReLU, dropout 0.2, Adam
* ``cnn``   — conv 3×3×8 → max-pool 2 → conv 3×3×16 → max-pool 2 → flatten → dense 128 ReLU
  → dense 10 softmax (dropout 0.3 before each dense layer), Adam. Filters 8 and 16, not 16 and
  32: a quarter of the multiply-adds of the second convolution, so the database scores it at
  ≈ 0.3× the dense net's rate instead of ≈ 0.13× (12/24: 0.19×), at 0.991 instead of 0.993.

Accuracy and epochs of the bundled artifacts: docs/models.md.

Dropout is a training-time layer only: it has no weights and leaves inference unchanged, so the
conversion skips it. TensorFlow is passed in (imported lazily by the trainer).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from streamscore.errors import ArtifactError, ConfigError
from streamscore.model import layers as L
from streamscore.model.reference import F32

ARCHITECTURES = ("seed", "dense", "cnn")
#: epochs when --epochs is not given (the seed recipe counts SGD steps instead)
DEFAULT_EPOCHS = {"dense": 20, "cnn": 12}
#: Adam's starting learning rate (cosine decay to 0 over the run)
LEARNING_RATE = 2e-3


def check_arch(arch: str) -> str:
    if arch not in ARCHITECTURES:
        raise ConfigError(f"unknown architecture {arch!r}: choose one of {', '.join(ARCHITECTURES)}")
    return arch


def build(arch: str, keras: Any, steps: int) -> Any:
    """A compiled Keras model for ``dense`` or ``cnn`` (input: pixels scaled to [0, 1], (n, 784)).

    Adam's learning rate falls from 0.002 to 0 along a cosine over the ``steps`` of the run: the
    last epochs settle instead of bouncing around the minimum (+0.2–0.4 points on t10k here).
    """
    layers = keras.layers
    if arch == "dense":
        stack = [keras.Input(shape=(784,)),
                 layers.Dense(256, activation="relu"), layers.Dropout(0.2),
                 layers.Dense(128, activation="relu"), layers.Dropout(0.2),
                 layers.Dense(10, activation="softmax")]
    elif arch == "cnn":
        stack = [keras.Input(shape=(784,)), layers.Reshape((28, 28, 1)),
                 layers.Conv2D(8, (3, 3), activation="relu"), layers.MaxPooling2D((2, 2)),
                 layers.Conv2D(16, (3, 3), activation="relu"), layers.MaxPooling2D((2, 2)),
                 layers.Flatten(), layers.Dropout(0.3),
                 layers.Dense(128, activation="relu"), layers.Dropout(0.3),
                 layers.Dense(10, activation="softmax")]
    else:
        raise ConfigError(f"architecture {arch!r} is not built here")
    net = keras.Sequential(stack)
    schedule = keras.optimizers.schedules.CosineDecay(LEARNING_RATE, decay_steps=max(1, steps))
    net.compile(optimizer=keras.optimizers.Adam(learning_rate=schedule), loss="sparse_categorical_crossentropy")
    return net


def convert(net: Any, keras: Any) -> tuple[list[L.Layer], list[F32], list[F32]]:
    """(layers, weights, biases) of a trained Keras model, in artifact form.

    A Conv2D kernel (kh, kw, c, filters) becomes the (kh·kw·c, filters) matrix whose rows follow
    the im2col patch order; Keras' Flatten is row, column, channel, as the reference's.
    """
    k = keras.layers
    layers: list[L.Layer] = []
    weights: list[F32] = []
    biases: list[F32] = []
    for layer in net.layers:
        if isinstance(layer, k.Dense):
            layers.append(L.dense(int(layer.units), _activation(layer)))
        elif isinstance(layer, k.Conv2D):
            if tuple(layer.strides) != (1, 1) or layer.padding != "valid":
                raise ArtifactError("only stride-1, unpadded convolutions can be exported", reason="unsupported-layers")
            kh, kw = (int(s) for s in layer.kernel_size)
            layers.append(L.conv2d(int(layer.filters), (kh, kw), _activation(layer)))
        elif isinstance(layer, k.MaxPooling2D):
            if tuple(layer.strides) != tuple(layer.pool_size) or layer.padding != "valid":
                raise ArtifactError("only non-overlapping, unpadded pooling can be exported",
                                    reason="unsupported-layers")
            ph, pw = (int(s) for s in layer.pool_size)
            layers.append(L.maxpool2d((ph, pw)))
            continue
        elif isinstance(layer, k.Flatten):
            layers.append(L.flatten())
            continue
        else:  # Dropout, and the Reshape that turns 784 pixels into a 28×28×1 image
            continue
        kernel = np.asarray(layer.kernel.numpy(), np.float32)
        weights.append(np.ascontiguousarray(kernel.reshape(-1, kernel.shape[-1])))
        biases.append(np.asarray(layer.bias.numpy(), np.float32))
    return layers, weights, biases


def _activation(layer: Any) -> str:
    name = str(getattr(layer.activation, "__name__", "identity"))
    return "identity" if name == "linear" else name
