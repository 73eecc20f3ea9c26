"""A model artifact as an ONNX graph (`streamscore export-onnx`; Oracle 23ai scores it in the database).

The graph is the reference forward pass, op for op: ``Mul(input_scale)`` on the raw pixels
(float32 0..255), then per dense layer ``Gemm(x, W, b)`` (W as stored, ``(n_in, n_out)``) and
its activation (Sigmoid, Relu, Tanh, Softmax over axis 1, or nothing for identity); outputs
``probabilities`` (float32, n × 10) and ``label`` (the first maximum, int64). Opset 17 and IR
version 8, so the ONNX Runtime 1.15 that Oracle 23ai's documentation cites can load it.
Layered artifacts add ``Reshape`` to (n, 1, 28, 28), ``Conv`` (the patch matrix back to the
(filters, channels, kh, kw) kernel), ``MaxPool`` (strides = pool, floor) and, for flatten, a
``Transpose`` to (n, h, w, c) and ``Flatten``, so the dense head sees the reference's order.
Engine-neutral: the Oracle backend adds only its loading metadata (backends/oracle/onnx_model.py).
Needs the onnx package (``pip install 'streamscore[onnx]'``; imported lazily).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np

from streamscore.errors import ArtifactError, MissingDependencyError
from streamscore.model.artifact import INPUTS, OUTPUTS, ModelArtifact

OPSET = 17
IR_VERSION = 8
INPUT_NAME = "pixels"
PROBABILITIES = "probabilities"
LABEL = "label"
ACTIVATION_OPS = {"sigmoid": "Sigmoid", "relu": "Relu", "tanh": "Tanh", "softmax": "Softmax", "identity": None}


def _onnx() -> Any:
    try:
        return importlib.import_module("onnx")
    except ImportError:
        raise MissingDependencyError(
            "exporting ONNX needs the onnx package, which is not installed: pip install 'streamscore[onnx]'"
        ) from None


def to_onnx(artifact: ModelArtifact) -> Any:
    """The ``onnx.ModelProto`` of ``artifact`` (checked with onnx.checker)."""
    onnx = _onnx()
    helper, numpy_helper, tensor = onnx.helper, onnx.numpy_helper, onnx.TensorProto
    initializers = [numpy_helper.from_array(np.array([artifact.input_scale], dtype=np.float32), "input_scale")]
    nodes = [helper.make_node("Mul", [INPUT_NAME, "input_scale"], ["x0"], name="scale")]
    current = "x0"
    arrays = iter(zip(artifact.weights, artifact.biases, strict=True))
    if artifact.layers[0].type != "dense":
        initializers.append(numpy_helper.from_array(np.array([-1, 1, 28, 28], np.int64), "image_shape"))
        nodes.append(helper.make_node("Reshape", [current, "image_shape"], ["image"], name="image"))
        current = "image"
    for index, layer in enumerate(artifact.layers):
        out = f"z{index}"
        if layer.type == "maxpool2d":
            nodes.append(helper.make_node("MaxPool", [current], [out], name=f"pool{index}",
                                          kernel_shape=list(layer.pool), strides=list(layer.pool)))
        elif layer.type == "flatten":  # NCHW → NHWC first: the reference flattens row, column, channel
            nodes.append(helper.make_node("Transpose", [current], [f"t{index}"], name=f"nhwc{index}",
                                          perm=[0, 2, 3, 1]))
            nodes.append(helper.make_node("Flatten", [f"t{index}"], [out], name=f"flatten{index}", axis=1))
        else:
            w, b = next(arrays)
            op = ACTIVATION_OPS.get(layer.activation, "?")
            if op == "?":
                raise ArtifactError(f"activation {layer.activation!r} has no ONNX operator", reason="unsupported-shape")
            if layer.type == "conv2d":
                kh, kw = layer.kernel
                kernel = w.reshape(kh, kw, w.shape[0] // (kh * kw), w.shape[1]).transpose(3, 2, 0, 1)
                initializers += [numpy_helper.from_array(np.ascontiguousarray(kernel, np.float32), f"w{index}"),
                                 numpy_helper.from_array(np.ascontiguousarray(b, np.float32), f"b{index}")]
                nodes.append(helper.make_node("Conv", [current, f"w{index}", f"b{index}"], [out],
                                              name=f"conv{index}", kernel_shape=[kh, kw]))
            else:
                initializers += [numpy_helper.from_array(np.ascontiguousarray(w, np.float32), f"w{index}"),
                                 numpy_helper.from_array(np.ascontiguousarray(b, np.float32), f"b{index}")]
                nodes.append(helper.make_node("Gemm", [current, f"w{index}", f"b{index}"], [out],
                                              name=f"dense{index}"))
            if op is not None:
                attributes = {"axis": 1} if op == "Softmax" else {}
                nodes.append(helper.make_node(op, [out], [f"a{index}"], name=f"{layer.activation}{index}",
                                              **attributes))
                out = f"a{index}"
        current = out
    nodes.append(helper.make_node("Identity", [current], [PROBABILITIES], name="output"))
    nodes.append(helper.make_node("ArgMax", [PROBABILITIES], [LABEL], name="predict", axis=1, keepdims=0))
    graph = helper.make_graph(
        nodes, f"{artifact.name}-v{artifact.version}",
        [helper.make_tensor_value_info(INPUT_NAME, tensor.FLOAT, ["n", INPUTS])],
        [helper.make_tensor_value_info(PROBABILITIES, tensor.FLOAT, ["n", OUTPUTS]),
         helper.make_tensor_value_info(LABEL, tensor.INT64, ["n"])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="streamscore", ir_version=IR_VERSION)
    helper.set_model_props(model, {"streamscore.name": artifact.name, "streamscore.version": str(artifact.version),
                                   "streamscore.sha256": artifact.sha256})
    onnx.checker.check_model(model, full_check=True)
    return model


def to_onnx_bytes(artifact: ModelArtifact) -> bytes:
    """The serialized ONNX model of ``artifact``."""
    serialized: bytes = to_onnx(artifact).SerializeToString()
    return serialized


def write_onnx(artifact: ModelArtifact, path: Path) -> int:
    """Write ``artifact`` as ONNX to ``path`` (folders created); returns the bytes written."""
    data = to_onnx_bytes(artifact)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return len(data)
