"""The ONNX export of a model artifact, scored by onnxruntime on all 10,000 MNIST test images.

Agreement with the numpy reference as promised for every in-database scorer (argmax ≥ 99.9 %,
|Δp| ≤ 1e-4), the weights carried bit for bit, and a graph Oracle 23ai's ONNX Runtime (1.15,
IR ≤ 9) can load. The Oracle side (LOAD_ONNX_MODEL, PREDICTION) is not built (docs/oracle.md).
"""

from __future__ import annotations

import numpy as np
import pytest
from test_oracle_chunk_port import assert_agrees, fitted_artifact

from streamscore.backends.oracle import onnx_model
from streamscore.errors import ArtifactError
from streamscore.model.artifact import build_artifact
from streamscore.model.reference import predict
from streamscore.shared.mnist import MnistSplit

onnx = pytest.importorskip("onnx", reason="pip install onnx (the onnx extra)")
ort = pytest.importorskip("onnxruntime", reason="pip install onnxruntime (dev extra)")


def run(model_bytes: bytes, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    probabilities, labels = session.run(["probabilities", "label"], {"pixels": pixels.astype(np.float32)})
    return probabilities, labels


@pytest.mark.parametrize(
    ("sizes", "activations", "seed"),
    [
        ((784, 100, 10), ("sigmoid", "softmax"), 1),
        ((784, 64, 16, 10), ("relu", "tanh", "softmax"), 2),
    ],
)
def test_onnxruntime_agrees_with_the_reference_on_all_mnist_test_images(
    test_split: MnistSplit, sizes: tuple[int, ...], activations: tuple[str, ...], seed: int,
) -> None:
    artifact = fitted_artifact(sizes, activations, seed, test_split)
    probabilities, labels = run(onnx_model.to_onnx_bytes(artifact), test_split.images)
    reference = artifact.forward(test_split.images)
    assert probabilities.dtype == np.float32 and probabilities.shape == (10_000, 10)
    assert_agrees(probabilities, reference)
    assert np.array_equal(labels, predict(probabilities))


def test_the_graph_carries_the_weights_and_loads_in_old_runtimes() -> None:
    rng = np.random.default_rng(5)
    weights = [rng.normal(size=(784, 8)).astype(np.float32), rng.normal(size=(8, 10)).astype(np.float32)]
    biases = [rng.normal(size=8).astype(np.float32), rng.normal(size=10).astype(np.float32)]
    artifact = build_artifact("tiny", 3, weights, biases, ("identity", "softmax"))
    model = onnx_model.to_onnx(artifact)
    assert model.ir_version <= 9 and model.opset_import[0].version <= 19  # ONNX Runtime 1.15
    stored = {init.name: onnx.numpy_helper.to_array(init) for init in model.graph.initializer}
    for index, (w, b) in enumerate(zip(weights, biases, strict=True)):
        assert np.array_equal(stored[f"w{index}"].view(np.uint32), w.view(np.uint32))
        assert np.array_equal(stored[f"b{index}"].view(np.uint32), b.view(np.uint32))
    assert stored["input_scale"][0] == np.float32(artifact.input_scale)
    ops = [node.op_type for node in model.graph.node]
    assert ops == ["Mul", "Gemm", "Gemm", "Softmax", "Identity", "ArgMax"]  # identity adds no op
    props = {prop.key: prop.value for prop in model.metadata_props}
    assert props["streamscore.sha256"] == artifact.sha256


def test_oracle_metadata_names_784_attributes_and_the_outputs() -> None:
    metadata = onnx_model.oracle_metadata()
    assert metadata["function"] == "classification"
    assert metadata["input"]["pixels"] == [f"P{i}" for i in range(784)]
    assert metadata["classificationProbOutput"] == "probabilities"
    assert metadata["labels"] == list(range(10))


def test_an_unknown_activation_is_refused() -> None:
    rng = np.random.default_rng(6)
    artifact = build_artifact("odd", 1, [rng.normal(size=(784, 10)).astype(np.float32)],
                              [np.zeros(10, np.float32)], ("softmax",))
    odd = type(artifact)(artifact.name, 1, ("gelu",), artifact.input_scale, artifact.weights, artifact.biases)
    with pytest.raises(ArtifactError, match="gelu"):
        onnx_model.to_onnx(odd)
