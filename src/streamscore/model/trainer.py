"""Train with TensorFlow/Keras (optional extra ``streamscore[train]``): ``arch`` seed, dense or cnn.

The seed is Canali's net: 784 → 100 sigmoid → 10 softmax, plain SGD at learning rate 0.5,
batches of 100, 30,000 steps (0.9787 test accuracy in the 2016 notebook). ``dense`` and ``cnn``
(:mod:`streamscore.model.keras_nets`) train with Adam for a number of epochs.
TensorFlow is imported lazily so the rest of streamscore never needs it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from streamscore.errors import MissingDependencyError
from streamscore.model import keras_nets
from streamscore.model.artifact import ModelArtifact, build_artifact
from streamscore.model.reference import predict
from streamscore.shared.mnist import MnistSplit

CANARY_COUNT = 16


@dataclass(frozen=True)
class TrainConfig:
    name: str = "mlp"
    version: int = 1
    hidden: tuple[int, ...] = (100,)
    activation: str = "sigmoid"
    steps: int = 30_000
    batch_size: int = 100
    learning_rate: float = 0.5
    seed: int = 2016
    #: seed (the recipe above, counted in ``steps``), dense or cnn (counted in ``epochs``)
    arch: str = "seed"
    #: epochs of dense/cnn training; 0 = the architecture's default
    epochs: int = 0


def import_tensorflow() -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
    except ImportError:
        raise MissingDependencyError(
            "training needs TensorFlow, which is an optional extra: "
            "pip install 'streamscore[train]'"
        ) from None
    return tf


def train(
    config: TrainConfig,
    train_split: MnistSplit,
    test_split: MnistSplit,
    progress: Callable[[int, int], None] | None = None,
) -> ModelArtifact:
    """Train with Keras and return a verified artifact whose metrics hold test accuracy.

    ``test_split`` is whatever the accuracy is reported on: t10k, or the held-out share of the
    images a database stored (``streamscore train --from-backend``).
    """
    tf = import_tensorflow()
    keras = tf.keras
    keras.utils.set_random_seed(config.seed)
    scale = np.float32(1 / 255)
    x_train = train_split.images.astype(np.float32) * scale
    y_train = train_split.labels.astype(np.int64)
    if keras_nets.check_arch(config.arch) != "seed":
        return _train_epochs(tf, config, x_train, y_train, test_split, progress)
    layers: list[Any] = [keras.Input(shape=(784,))]
    layers += [keras.layers.Dense(units, activation=config.activation) for units in config.hidden]
    layers.append(keras.layers.Dense(10, activation="softmax"))
    net = keras.Sequential(layers)
    net.compile(
        optimizer=keras.optimizers.SGD(learning_rate=config.learning_rate),
        loss="sparse_categorical_crossentropy",
    )
    steps_per_epoch = max(1, len(train_split) // config.batch_size)  # a few stored images: one step
    epochs, remainder = divmod(config.steps, steps_per_epoch)
    done = 0

    class Progress(keras.callbacks.Callback):  # type: ignore[misc,name-defined]
        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            nonlocal done
            done += 1
            if progress is not None and done % 100 == 0:
                progress(done, config.steps)

    callbacks = [Progress()]
    if epochs:
        net.fit(x_train, y_train, batch_size=config.batch_size, epochs=epochs,
                shuffle=True, verbose=0, callbacks=callbacks)
    if remainder:
        rng = np.random.default_rng(config.seed)
        pick = rng.permutation(len(train_split))[: remainder * config.batch_size]
        net.fit(x_train[pick], y_train[pick], batch_size=config.batch_size, epochs=1,
                shuffle=True, verbose=0, callbacks=callbacks)
    dense = [layer for layer in net.layers if isinstance(layer, keras.layers.Dense)]
    weights = [np.asarray(layer.kernel.numpy(), np.float32) for layer in dense]
    biases = [np.asarray(layer.bias.numpy(), np.float32) for layer in dense]
    activations = [config.activation] * len(config.hidden) + ["softmax"]
    probe = build_artifact(config.name, config.version, weights, biases, activations)
    accuracy = float((predict(probe.forward(test_split.images)) == test_split.labels).mean())
    metrics = {
        "test_accuracy": round(accuracy, 4),
        "steps": config.steps,
        "batch_size": config.batch_size,
        "learning_rate": config.learning_rate,
        "hidden": list(config.hidden),
        "tensorflow": tf.__version__,
    }
    return build_artifact(
        config.name, config.version, weights, biases, activations,
        metrics=metrics, canary_pixels=test_split.images[:CANARY_COUNT].copy(),
    )


def epochs_of(config: TrainConfig) -> int:
    return config.epochs or keras_nets.DEFAULT_EPOCHS[config.arch]


def _train_epochs(
    tf: Any, config: TrainConfig, x_train: Any, y_train: Any, test_split: MnistSplit,
    progress: Callable[[int, int], None] | None,
) -> ModelArtifact:
    """dense / cnn: Adam for ``epochs_of(config)`` epochs; progress counts epochs."""
    keras = tf.keras
    epochs = epochs_of(config)
    net = keras_nets.build(config.arch, keras, epochs * -(-len(x_train) // config.batch_size))

    class Progress(keras.callbacks.Callback):  # type: ignore[misc,name-defined]
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            if progress is not None:
                progress(epoch + 1, epochs)

    net.fit(x_train, y_train, batch_size=config.batch_size, epochs=epochs, shuffle=True, verbose=0,
            callbacks=[Progress()])
    layers, weights, biases = keras_nets.convert(net, keras)
    activations = [layer.activation for layer in layers if layer.type in ("dense", "conv2d")]
    probe = build_artifact(config.name, config.version, weights, biases, activations, layers=layers)
    accuracy = float((predict(probe.forward(test_split.images)) == test_split.labels).mean())
    metrics = {
        "test_accuracy": round(accuracy, 4),
        "arch": config.arch,
        "epochs": epochs,
        "batch_size": config.batch_size,
        "optimizer": f"adam {keras_nets.LEARNING_RATE}, cosine decay",
        "train_images": len(x_train),
        "tensorflow": tf.__version__,
    }
    return build_artifact(
        config.name, config.version, weights, biases, activations, layers=layers,
        metrics=metrics, canary_pixels=test_split.images[:CANARY_COUNT].copy(),
    )
