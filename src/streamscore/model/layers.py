"""Layer specs of an artifact: what the manifest's ``layers`` list says and the shape walk that checks it.

A dense artifact (format 1) writes ``layers`` as its layer sizes, e.g. ``[784, 100, 10]``, and its
layers are implied: one ``dense`` layer per ``weights_i``. A layered artifact (format 2) writes
``layers`` as objects naming each layer's type, e.g.::

    [{"type": "conv2d", "filters": 16, "kernel": [3, 3], "activation": "relu"},
     {"type": "maxpool2d", "pool": [2, 2]},
     {"type": "flatten"},
     {"type": "dense", "units": 10, "activation": "softmax"}]

Only ``conv2d`` and ``dense`` hold arrays: ``weights_i``/``biases_i`` in layer order, every weights
array shaped (inputs, outputs) as before. A conv2d's "inputs" are its patch (kh·kw·channels, rows
ordered kernel row, kernel column, channel: Keras' HWIO kernel reshaped), so the layer is a matrix
product over im2col patches. Convolutions are stride 1, no padding; pooling is max over
non-overlapping windows (stride = pool, the remainder dropped); flatten keeps (row, column,
channel) order. The input is the image as (28, 28, 1) (``input_shape``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from streamscore.errors import ArtifactError

INPUT_SHAPE = (28, 28, 1)
#: layer types this version of streamscore can score; others are refused (reason unsupported-layers)
LAYER_TYPES = ("dense", "conv2d", "maxpool2d", "flatten")
#: layer types that hold a weights_i/biases_i pair
WEIGHTED = frozenset({"dense", "conv2d"})


@dataclass(frozen=True)
class Layer:
    """One layer: ``units`` are a dense layer's outputs or a conv2d's filters."""

    type: str
    units: int = 0
    activation: str = "identity"
    kernel: tuple[int, int] = (0, 0)
    pool: tuple[int, int] = (0, 0)

    def to_json(self) -> dict[str, Any]:
        if self.type == "dense":
            return {"type": "dense", "units": self.units, "activation": self.activation}
        if self.type == "conv2d":
            return {"type": "conv2d", "filters": self.units, "kernel": list(self.kernel),
                    "activation": self.activation}
        if self.type == "maxpool2d":
            return {"type": "maxpool2d", "pool": list(self.pool)}
        return {"type": self.type}


def dense(units: int, activation: str) -> Layer:
    return Layer("dense", units=units, activation=activation)


def conv2d(filters: int, kernel: tuple[int, int], activation: str) -> Layer:
    return Layer("conv2d", units=filters, activation=activation, kernel=kernel)


def maxpool2d(pool: tuple[int, int]) -> Layer:
    return Layer("maxpool2d", pool=pool)


def flatten() -> Layer:
    return Layer("flatten")


def is_layered(raw: Any) -> bool:
    """True when a manifest's ``layers`` value is the format-2 list of layer objects."""
    return isinstance(raw, list) and any(isinstance(item, dict) for item in raw)


def parse_layers(raw: Any) -> tuple[Layer, ...]:
    """Layers from a manifest's format-2 ``layers``; ArtifactError (unsupported-layers, bad-manifest)."""
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        raise ArtifactError("manifest 'layers' mixes layer objects with other values", reason="bad-manifest")
    layers: list[Layer] = []
    for index, item in enumerate(raw):
        kind = item.get("type")
        if kind not in LAYER_TYPES:
            raise ArtifactError(
                f"layer {index} has type {kind!r}, which this streamscore cannot score "
                f"(it knows {', '.join(LAYER_TYPES)}): upgrade the consumer or publish another model",
                reason="unsupported-layers",
            )
        try:
            if kind == "dense":
                layers.append(dense(int(item["units"]), str(item["activation"])))
            elif kind == "conv2d":
                kh, kw = (int(k) for k in item["kernel"])
                layers.append(conv2d(int(item["filters"]), (kh, kw), str(item["activation"])))
            elif kind == "maxpool2d":
                ph, pw = (int(p) for p in item["pool"])
                layers.append(maxpool2d((ph, pw)))
            else:
                layers.append(flatten())
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"layer {index} ({kind}) is malformed: {exc!r}", reason="bad-manifest") from None
    return tuple(layers)


def layer_types(layers: Sequence[Layer]) -> list[str]:
    """The distinct layer types in order of first use (for messages and engine checks)."""
    return list(dict.fromkeys(layer.type for layer in layers))


def check_shapes(
    layers: Sequence[Layer], shapes: Sequence[tuple[tuple[int, ...], tuple[int, ...]]], outputs: int,
) -> None:
    """Walk the input (28, 28, 1) through ``layers``; ArtifactError bad-shape at the first mismatch.

    ``shapes`` are the (weights shape, biases shape) of the weighted layers, in order.
    """
    if sum(layer.type in WEIGHTED for layer in layers) != len(shapes):
        raise ArtifactError(
            f"{len(shapes)} weights arrays for {sum(layer.type in WEIGHTED for layer in layers)} weighted layers",
            reason="bad-shape",
        )
    # a dense first layer takes the 784 pixels as they come (the format-1 forward pass)
    spatial: tuple[int, int, int] | None = None if layers and layers[0].type == "dense" else INPUT_SHAPE
    flat = INPUT_SHAPE[0] * INPUT_SHAPE[1] * INPUT_SHAPE[2]
    arrays = iter(shapes)
    for index, layer in enumerate(layers):
        where = f"layer {index} ({layer.type})"
        if layer.type == "flatten":
            if spatial is None:
                raise ArtifactError(f"{where} follows a flat layer", reason="bad-shape")
            flat, spatial = spatial[0] * spatial[1] * spatial[2], None
            continue
        if layer.type == "maxpool2d":
            if spatial is None or min(layer.pool) < 1 or layer.pool[0] > spatial[0] or layer.pool[1] > spatial[1]:
                raise ArtifactError(f"{where}: pool {layer.pool} does not fit input {spatial}", reason="bad-shape")
            spatial = (spatial[0] // layer.pool[0], spatial[1] // layer.pool[1], spatial[2])
            continue
        w, b = next(arrays)
        if layer.type == "conv2d" and layer.activation == "softmax":
            raise ArtifactError(f"{where}: softmax is for the output layer, not a convolution",
                                reason="bad-activation")
        if layer.type == "conv2d":
            if spatial is None or min(layer.kernel) < 1 or layer.kernel[0] > spatial[0] or layer.kernel[1] > spatial[1]:
                raise ArtifactError(f"{where}: kernel {layer.kernel} does not fit input {spatial}", reason="bad-shape")
            inputs = layer.kernel[0] * layer.kernel[1] * spatial[2]
        else:
            if spatial is not None:
                raise ArtifactError(f"{where} needs a flat input: put a flatten layer before it", reason="bad-shape")
            inputs = flat
        if w != (inputs, layer.units) or b != (layer.units,):
            raise ArtifactError(
                f"{where}: weights {w} / biases {b}, expected ({inputs}, {layer.units}) / ({layer.units},)",
                reason="bad-shape",
            )
        if layer.type == "conv2d" and spatial is not None:
            spatial = (spatial[0] - layer.kernel[0] + 1, spatial[1] - layer.kernel[1] + 1, layer.units)
        else:
            flat = layer.units
    if spatial is not None or flat != outputs:
        raise ArtifactError(f"the last layer gives {spatial or flat} outputs, not {outputs}", reason="bad-shape")
