"""The numpy reference forward pass, and the same pass computed by TensorFlow when it is installed."""

from __future__ import annotations

import numpy as np
import pytest

from streamscore.model.reference import forward, predict
from streamscore.models import bundled_model
from streamscore.shared.mnist import MnistSplit


def test_forward_matches_the_formula(test_split: MnistSplit) -> None:
    model = bundled_model(2)
    pixels = test_split.images[:5]
    x = pixels.astype(np.float64) / 255
    hidden = 1 / (1 + np.exp(-(x @ model.weights[0] + model.biases[0])))
    z = hidden @ model.weights[1] + model.biases[1]
    expected = np.exp(z - z.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    got = forward(pixels, model.weights, model.biases, model.activations, model.input_scale)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-6)
    np.testing.assert_allclose(got.sum(1), 1, atol=1e-5)


def test_extreme_inputs_stay_finite() -> None:
    model = bundled_model(2)
    weights = [w * 1000 for w in model.weights]
    pixels = np.full((2, 784), 255, np.uint8)
    probabilities = forward(pixels, weights, model.biases, model.activations, model.input_scale)
    assert np.isfinite(probabilities).all()


@pytest.mark.tensorflow
def test_reference_agrees_with_tensorflow(test_split: MnistSplit) -> None:
    tf = pytest.importorskip("tensorflow", reason="TensorFlow not installed: pip install 'streamscore[train]'")
    model = bundled_model(2)
    keras = tf.keras
    net = keras.Sequential([keras.Input(shape=(784,)), keras.layers.Dense(100, activation="sigmoid"),
                            keras.layers.Dense(10, activation="softmax")])
    for layer, w, b in zip(net.layers, model.weights, model.biases, strict=True):
        layer.set_weights([w, b])
    pixels = test_split.images[:64]
    expected = net(pixels.astype(np.float32) / 255).numpy()
    got = model.forward(pixels)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert (predict(got) == expected.argmax(1)).all()
