"""streamscore distributed inference UDF for Kinetica (runs inside the database).

Registered by ``streamscore.backends.kinetica.procs`` with ``create_proc`` in
distributed mode and executed once per batch with ``execute_proc`` over the
``score_inbox`` table, which holds only the batches in flight (the backend
inserts a batch before the run and deletes it after): the rows Kinetica copies
for a run and the rows this UDF scans do not grow with the images table. Each
instance sees its own shard of the inbox (sharded on ``image_id``), keeps the
rows of the requested batch, scores them and appends one row per image to the
output table (sharded the same way, so the rows stay on the input's shard).

Params (all strings): ``batch_id``, ``model_name``, ``model_version``, ``role``,
and the weights: ``model_id``, ``sha256``, ``input_scale`` and ``layers`` (JSON,
the float32 little-endian bytes base64-encoded -- not ``bin_params``, which
kinetica_proc 7.2.0.1 decodes as UTF-8 text and so corrupts binary data), and for a
layered model (conv2d, maxpool2d, flatten) ``spec``: the artifact's layer list as the
canonical JSON its digest covers. The weights (and the spec) are verified against
``sha256`` before anything is scored; no rank calls back to the head node.

This file must stay standalone: only numpy, the stdlib and ``kinetica_proc``
are used inside Kinetica. The forward pass therefore
duplicates ``streamscore.model.reference.forward`` on purpose, line by line, so
a reviewer can hold the two side by side; tests/unit/test_kinetica_udf.py
checks that they agree on the MNIST test set.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

# one BLAS thread per UDF process unless Kinetica's environment says otherwise: every rank runs its own
# process, and OpenBLAS would start a thread per core in each and keep them spinning after each
# product (measured for the consumer and PL/Python: docs/decisions.md, "BLAS threads and paced producers")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402  (after the BLAS setting, which OpenBLAS reads when it loads)

PIXELS = 784
CLASSES = 10
#: kinetica_proc column type codes whose values are variable width (append/extend only)
VARIABLE_WIDTH_TYPES = frozenset({0x1, 0x2, 0x100, 0x40000000, 0x80000000})


# -- the scoring math (pure; mirrors streamscore.model.reference) -------------------------
def _sigmoid(z: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)


def _softmax(z: np.ndarray) -> np.ndarray:
    shifted = np.exp(z - z.max(axis=1, keepdims=True))
    return (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)


ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "sigmoid": _sigmoid,
    "relu": lambda z: np.maximum(z, np.float32(0)),
    "tanh": lambda z: np.tanh(z).astype(np.float32),
    "softmax": _softmax,
    "identity": lambda z: z,
}


@dataclass(frozen=True)
class Model:
    """One model version as the UDF needs it."""

    model_id: str
    input_scale: float
    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    activations: tuple[str, ...]
    #: the layer list of a layered model (dicts as in the artifact manifest); None for a dense stack
    spec: tuple[dict[str, Any], ...] | None = None


def forward(pixels: np.ndarray, model: Model) -> np.ndarray:
    """Class probabilities (n, 10) float32 for uint8 pixels (n, 784)."""
    x = pixels.astype(np.float32) * np.float32(model.input_scale)
    if model.spec is not None:
        return np.concatenate([forward_layers(x[start:start + CHUNK], model) for start in range(0, len(x), CHUNK)]
                              or [np.zeros((0, CLASSES), np.float32)])
    for w, b, act in zip(model.weights, model.biases, model.activations, strict=True):
        x = ACTIVATIONS[act](x @ w + b)
    return x


# -- layered models: mirrors streamscore.model.reference.forward_layers -------------------------
CHUNK = 256
POOL_FIRST = ("relu", "identity")


def patches(x: np.ndarray, kernel: Sequence[int]) -> np.ndarray:
    kh, kw = kernel
    rows, cols = x.shape[2] - kh + 1, x.shape[3] - kw + 1
    stacked = np.stack([x[:, :, i:i + rows, j:j + cols] for i in range(kh) for j in range(kw)])
    return stacked.reshape(kh * kw * x.shape[0], -1)


def maxpool(x: np.ndarray, pool: Sequence[int]) -> np.ndarray:
    ph, pw = pool
    rows, cols = x.shape[2] // ph, x.shape[3] // pw
    result = x[:, :, 0:rows * ph:ph, 0:cols * pw:pw].copy()
    for i in range(ph):
        for j in range(pw):
            if i or j:
                np.maximum(result, x[:, :, i:rows * ph:ph, j:cols * pw:pw], out=result)
    return result


def conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray, kernel: Sequence[int], activation: str,
           pool: Sequence[int] | None) -> np.ndarray:
    n, rows, cols = x.shape[1], x.shape[2] - kernel[0] + 1, x.shape[3] - kernel[1] + 1
    product = (w.T @ patches(x, kernel)).reshape(w.shape[1], n, rows, cols)
    if pool is not None:
        product = maxpool(product, pool)
    product += b[:, None, None, None]
    return ACTIVATIONS[activation](product)


def forward_layers(x: np.ndarray, model: Model) -> np.ndarray:
    """Scaled pixels (n, 784) through conv2d/maxpool2d/flatten/dense, images channels first."""
    spec = model.spec or ()
    if spec[0]["type"] != "dense":
        x = x.reshape(1, -1, 28, 28)
    arrays = iter(zip(model.weights, model.biases, strict=True))
    pooled = False
    for index, layer in enumerate(spec):
        kind = layer["type"]
        if kind == "conv2d":
            w, b = next(arrays)
            after = spec[index + 1] if index + 1 < len(spec) else None
            pooled = after is not None and after["type"] == "maxpool2d" and layer["activation"] in POOL_FIRST
            x = conv2d(x, w, b, layer["kernel"], layer["activation"], after["pool"] if pooled and after else None)
        elif kind == "maxpool2d" and pooled:
            pooled = False
        elif kind == "maxpool2d":
            x = maxpool(x, layer["pool"])
        elif kind == "flatten":
            x = x.transpose(1, 2, 3, 0).reshape(x.shape[1], -1)
        elif kind == "dense":
            w, b = next(arrays)
            x = ACTIVATIONS[layer["activation"]](x @ w + b)
        else:
            raise ValueError(f"model {model.model_id}: layer type {kind!r} cannot be scored here")
    return x


def weights_digest(layers: Sequence[tuple[int, int, int, str, bytes, bytes]], spec: str | None = None) -> str:
    """sha256 of the weights as ``streamscore.model.artifact.weights_digest`` computes it (the
    stored bytes are already little-endian float32, so they are hashed as they are), and of the
    canonical layer list ``spec`` of a layered model."""
    digest = hashlib.sha256()
    for index, (_layer, n_in, n_out, _activation, w, b) in enumerate(sorted(layers)):
        digest.update(f"layer{index}:{n_in}x{n_out};".encode())
        digest.update(bytes(w))
        digest.update(bytes(b))
    if spec is not None:
        digest.update(f"layers:{spec}".encode())
    return digest.hexdigest()


def model_from_layers(
    model_id: str, input_scale: float, layers: Sequence[tuple[int, int, int, str, bytes, bytes]],
    sha256: str | None = None, spec: str | None = None,
) -> Model:
    """Rebuild a model from ``model_layers`` rows (layer, n_in, n_out, activation, w, b),
    verifying the weights (and the layer list ``spec``) against the ``models`` row's ``sha256``
    when it is given."""
    if sha256 is not None and weights_digest(layers, spec) != sha256:
        raise ValueError(f"model {model_id}: the weights in model_layers do not match the model's "
                         f"sha256 {sha256[:12]}...: reinstall the model")
    weights, biases, activations = [], [], []
    for expected, (layer, n_in, n_out, activation, w, b) in enumerate(sorted(layers)):
        if layer != expected:
            raise ValueError(f"model {model_id}: layer {expected} is missing")
        weights.append(np.frombuffer(w, dtype="<f4").reshape(n_in, n_out).astype(np.float32))
        biases.append(np.frombuffer(b, dtype="<f4").reshape(n_out).astype(np.float32))
        activations.append(activation)
    if not weights:
        raise ValueError(f"model {model_id} has no layers")
    layered = None if not spec else tuple(json.loads(spec))
    return Model(model_id, input_scale, tuple(weights), tuple(biases), tuple(activations), layered)


def decode_pixels(blobs: Sequence[bytes]) -> np.ndarray:
    """(n, 784) uint8 from the ``pixels`` column (784 raw bytes per image)."""
    if not blobs:
        return np.zeros((0, PIXELS), np.uint8)
    return np.frombuffer(b"".join(blobs), dtype=np.uint8).reshape(-1, PIXELS)


# -- weights from the run's params --------------------------------------------------------
def model_from_params(params: Any) -> Model:
    """The model the backend sent with the run (params ``model_id``, ``sha256``, ``input_scale``,
    ``layers``: JSON ``[[n_in, n_out, activation, base64 weights, base64 biases], ...]``),
    verified against its sha256. Params are text in kinetica_proc (bin_params are decoded as
    UTF-8 by 7.2.0.1 and corrupt bytes), hence base64."""
    layers = [
        (index, int(n_in), int(n_out), str(activation), base64.b64decode(w), base64.b64decode(b))
        for index, (n_in, n_out, activation, w, b) in enumerate(json.loads(params["layers"]))
    ]
    return model_from_layers(str(params["model_id"]), float(params["input_scale"]), layers,
                             str(params["sha256"]), params.get("spec") or None)


# -- kinetica_proc glue -------------------------------------------------------------------
def _fill(column: Any, values: Sequence[Any]) -> None:
    if column.type in VARIABLE_WIDTH_TYPES:
        column.extend(values)
    else:
        column[:] = values


def run(proc: Any) -> int:
    """Score this instance's rows of the batch into output table 0; returns the row count.

    The input is the small inbox table (this batch and other consumers' batches in flight), so
    a run reads as many rows as are in flight, never the whole images table; the weights come
    with the params, so no rank calls back to the head node."""
    params = proc.params
    batch_id = params["batch_id"]
    name, version, role = params["model_name"], int(params["model_version"]), params["role"]
    table = proc.input_data[0]
    rows = [i for i, value in enumerate(table["batch_id"]) if value == batch_id]
    ids = [table["image_id"][i] for i in rows]
    pixels = decode_pixels([table["pixels"][i] for i in rows])
    out = proc.output_data[0]
    out.size = len(rows)
    if rows:
        model = model_from_params(params)
        probabilities = forward(pixels, model)
        now = int(time.time() * 1000)
        n = len(rows)
        _fill(out["image_id"], ids)
        _fill(out["batch_id"], [batch_id] * n)
        _fill(out["model_name"], [name] * n)
        _fill(out["model_version"], [version] * n)
        _fill(out["role"], [role] * n)
        _fill(out["model_id"], [model.model_id] * n)
        _fill(out["predicted"], [int(p) for p in probabilities.argmax(axis=1)])
        for k in range(CLASSES):
            _fill(out[f"p{k}"], [float(p) for p in probabilities[:, k]])
        _fill(out["scored_at"], [now] * n)
    proc.results["scored"] = str(len(rows))
    proc.results["read"] = str(table.size)
    proc.status = f"scored {len(rows)} of {table.size} rows with {name} v{version}"
    return len(rows)


def main() -> None:
    """Entry point inside Kinetica."""
    from kinetica_proc import ProcData

    proc = ProcData()
    run(proc)
    proc.complete()


if __name__ == "__main__":
    main()
