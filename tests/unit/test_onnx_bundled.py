"""Every bundled artifact (dense v1–v3, the CNN v4) exported to ONNX and scored by onnxruntime on all
10,000 MNIST test images agrees with the numpy reference (the contract's bar)."""

from __future__ import annotations

import numpy as np
import pytest

from streamscore.model.onnx_export import to_onnx_bytes
from streamscore.model.reference import predict
from streamscore.models import bundled_model
from streamscore.shared.mnist import MnistSplit

pytest.importorskip("onnx", reason="pip install 'streamscore[onnx]'")
ort = pytest.importorskip("onnxruntime", reason="pip install onnxruntime (dev extra)")


@pytest.mark.parametrize("version", [1, 2, 3, 4])
def test_the_onnx_graph_of_each_bundled_model_agrees_with_the_reference(test_split: MnistSplit, version: int) -> None:
    model = bundled_model(version)
    session = ort.InferenceSession(to_onnx_bytes(model), providers=["CPUExecutionProvider"])
    probabilities, labels = session.run(["probabilities", "label"], {"pixels": test_split.images.astype(np.float32)})
    reference = model.forward(test_split.images)
    assert probabilities.shape == (10_000, 10)
    assert (predict(probabilities) == predict(reference)).mean() >= 0.999
    assert float(np.abs(probabilities - reference).max()) <= 1e-4
    assert np.array_equal(labels, predict(probabilities))
    if version == 4:
        ops = {node.op_type for node in __import__("onnx").load_from_string(to_onnx_bytes(model)).graph.node}
        assert {"Conv", "MaxPool", "Flatten"} <= ops
