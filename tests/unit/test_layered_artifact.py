"""Layered artifacts (conv2d, maxpool2d, flatten): format, digest, rejections, reference pass."""

from __future__ import annotations

import numpy as np
import pytest
from test_artifact import rewrite

from streamscore.errors import ArtifactError
from streamscore.model import layers as L
from streamscore.model.artifact import ModelArtifact, build_artifact
from streamscore.model.reference import CHUNK
from streamscore.shared.mnist import MnistSplit

LAYERS = [L.conv2d(4, (3, 3), "relu"), L.maxpool2d((2, 2)), L.conv2d(6, (3, 3), "relu"), L.maxpool2d((2, 2)),
          L.flatten(), L.dense(10, "softmax")]


def small_cnn(canary: np.ndarray | None = None) -> ModelArtifact:
    rng = np.random.default_rng(3)
    weights = [rng.normal(0, 0.5, (9, 4)), rng.normal(0, 0.3, (36, 6)), rng.normal(0, 0.2, (150, 10))]
    biases = [rng.normal(0, 0.1, 4), rng.normal(0, 0.1, 6), np.zeros(10)]
    return build_artifact("mlp", 4, [w.astype(np.float32) for w in weights], [b.astype(np.float32) for b in biases],
                          ["relu", "relu", "softmax"], layers=LAYERS, canary_pixels=canary)


def direct_forward(model: ModelArtifact, pixels: np.ndarray) -> np.ndarray:
    """The same net written as loops over output positions (the definition, not im2col)."""
    x = pixels.astype(np.float64).reshape(-1, 28, 28, 1) / 255
    arrays = iter(zip(model.weights, model.biases, strict=True))
    for layer in model.layers:
        if layer.type == "conv2d":
            w, b = next(arrays)
            kernel = w.reshape(3, 3, x.shape[3], -1)
            out = np.zeros((len(x), x.shape[1] - 2, x.shape[2] - 2, kernel.shape[3]))
            for i in range(out.shape[1]):
                for j in range(out.shape[2]):
                    out[:, i, j, :] = np.einsum("nabc,abcf->nf", x[:, i:i + 3, j:j + 3, :], kernel) + b
            x = np.maximum(out, 0)
        elif layer.type == "maxpool2d":
            h, w_ = x.shape[1] // 2, x.shape[2] // 2
            x = x[:, :h * 2, :w_ * 2, :].reshape(len(x), h, 2, w_, 2, -1).max(axis=(2, 4))
        elif layer.type == "flatten":
            x = x.reshape(len(x), -1)
        else:
            w, b = next(arrays)
            z = x @ w + b
            x = np.exp(z - z.max(1, keepdims=True))
            x /= x.sum(1, keepdims=True)
    return x


def test_round_trip_names_the_layer_types(test_split: MnistSplit) -> None:
    model = ModelArtifact.from_bytes(small_cnn(test_split.images[:8]).to_bytes())
    assert model.layered and model.layers == tuple(LAYERS)
    assert [layer["type"] for layer in model.manifest["layers"]] == [
        "conv2d", "maxpool2d", "conv2d", "maxpool2d", "flatten", "dense"]
    assert model.sha256 == small_cnn().sha256


def test_reference_matches_the_definition_and_chunks_alike(test_split: MnistSplit) -> None:
    model = small_cnn()
    pixels = test_split.images[: CHUNK + 5]  # two chunks
    got = model.forward(pixels)
    assert got.dtype == np.float32 and got.shape == (CHUNK + 5, 10)
    assert np.abs(got[:20] - direct_forward(model, pixels[:20])).max() < 1e-5
    assert np.array_equal(got[CHUNK:], model.forward(pixels[CHUNK:]))


def test_an_old_consumer_rejects_a_layered_artifact() -> None:
    """A consumer from before format 2 ignores 'layers': it sees a 9 x 4 first layer and refuses."""
    data = rewrite(small_cnn().to_bytes(), manifest_layers=None)
    with pytest.raises(ArtifactError) as caught:
        ModelArtifact.from_bytes(data)
    assert caught.value.reason == "bad-shape"
    assert "(9, 4)" in caught.value.message


def test_the_digest_covers_the_layer_list() -> None:
    data = small_cnn().to_bytes()
    changed = [layer.to_json() for layer in LAYERS]
    changed[0]["activation"] = "identity"  # same arrays, same shapes: another net all the same
    with pytest.raises(ArtifactError) as caught:
        ModelArtifact.from_bytes(rewrite(data, manifest_layers=changed,
                                         manifest_activations=["identity", "relu", "softmax"]))
    assert caught.value.reason == "bad-digest"


@pytest.mark.parametrize(
    ("layers", "reason"),
    [
        ([{"type": "batchnorm"}], "unsupported-layers"),
        ([{"type": "conv2d", "filters": 4}], "bad-manifest"),
        ([{"type": "conv2d", "filters": 4, "kernel": [3, 3], "activation": "relu"}, {"type": "flatten"},
          {"type": "conv2d", "filters": 6, "kernel": [3, 3], "activation": "relu"}, {"type": "flatten"},
          {"type": "dense", "units": 10, "activation": "softmax"}], "bad-shape"),
        ([{"type": "conv2d", "filters": 4, "kernel": [3, 3], "activation": "tanh"}, *[
            layer.to_json() for layer in LAYERS[1:]]], "bad-activation"),
    ],
)
def test_layered_rejections(layers: list[dict[str, object]], reason: str) -> None:
    with pytest.raises(ArtifactError) as caught:
        ModelArtifact.from_bytes(rewrite(small_cnn().to_bytes(), manifest_layers=layers))
    assert caught.value.reason == reason


def test_a_dense_stack_stays_format_1() -> None:
    rng = np.random.default_rng(1)
    weights = [rng.normal(0, 0.1, (784, 8)).astype(np.float32), rng.normal(0, 0.1, (8, 10)).astype(np.float32)]
    biases = [np.zeros(8, np.float32), np.zeros(10, np.float32)]
    model = build_artifact("mlp", 3, weights, biases, ["relu", "softmax"],
                           layers=[L.dense(8, "relu"), L.dense(10, "softmax")])
    assert not model.layered
    assert ModelArtifact.from_bytes(model.to_bytes()).manifest["layers"] == [784, 8, 10]
