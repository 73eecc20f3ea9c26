"""The model artifact: one ``.npz`` (loaded with ``allow_pickle=False``) plus a JSON manifest.

Arrays: ``weights_i`` (inputs, outputs) and ``biases_i`` float32 per layer,
``manifest`` (UTF-8 JSON as uint8), and optionally ``canary_pixels`` (k, 784)
uint8 whose reference predictions are in the manifest's ``canary`` list.

The weights digest (manifest ``sha256``) covers each layer's shape and
little-endian float32 bytes in layer order, so it is independent of npz zip
metadata and can be recomputed from weights stored in any database.

Layered artifacts (conv2d, maxpool2d, flatten: :mod:`streamscore.model.layers`) name their layer
types in the manifest's ``layers`` list, and their digest also covers that list (canonical JSON),
so changing a pool size or kernel is tampering too. A consumer older than layered artifacts
rejects them: their first weights array is a conv patch matrix (e.g. 9 x 8), not 784 inputs
(``bad-shape``), and were the shapes ever to chain, their digest would not match (``bad-digest``).
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from streamscore.errors import ArtifactError
from streamscore.model.layers import Layer, check_shapes, dense, is_layered, parse_layers
from streamscore.model.reference import ACTIVATIONS, F32, forward, forward_layers, predict

INPUTS = 784
OUTPUTS = 10


def weights_digest(weights: Sequence[F32], biases: Sequence[F32], layers: Sequence[Layer] | None = None) -> str:
    """sha256 of every array (shape, then bytes); for a layered artifact also of its ``layers`` list."""
    digest = hashlib.sha256()
    for index, (w, b) in enumerate(zip(weights, biases, strict=True)):
        digest.update(f"layer{index}:{'x'.join(str(d) for d in w.shape)};".encode())
        digest.update(np.ascontiguousarray(w, dtype="<f4").tobytes())
        digest.update(np.ascontiguousarray(b, dtype="<f4").tobytes())
    if layers is not None:
        digest.update(f"layers:{layers_json(layers)}".encode())
    return digest.hexdigest()


def layers_json(layers: Sequence[Layer]) -> str:
    """The canonical JSON of a layer list, as the digest covers it (compact, keys sorted)."""
    return json.dumps([layer.to_json() for layer in layers], sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class ModelArtifact:
    """A verified network from 784 pixels to 10 class probabilities: a dense stack, or layered."""

    name: str
    version: int
    activations: tuple[str, ...]
    input_scale: float
    weights: tuple[F32, ...]
    biases: tuple[F32, ...]
    manifest: dict[str, Any] = field(default_factory=dict)
    canary_pixels: npt.NDArray[np.uint8] | None = None

    @property
    def layered(self) -> bool:
        """True for a format-2 artifact (its manifest names layer types: conv2d, maxpool2d, …)."""
        return is_layered(self.manifest.get("layers"))

    @property
    def layers(self) -> tuple[Layer, ...]:
        """Every layer; a dense artifact's are implied by its weights and activations."""
        if self.layered:
            return parse_layers(self.manifest["layers"])
        return tuple(dense(int(w.shape[1]), act) for w, act in zip(self.weights, self.activations, strict=False))

    @property
    def sha256(self) -> str:
        return weights_digest(self.weights, self.biases, self.layers if self.layered else None)

    @property
    def layer_sizes(self) -> list[int]:
        """784, then each weighted layer's outputs (for a dense stack: its layer sizes)."""
        return [self.weights[0].shape[0], *(w.shape[1] for w in self.weights)]

    def forward(self, pixels: npt.NDArray[np.uint8]) -> F32:
        if self.layered:
            return forward_layers(pixels, self.layers, self.weights, self.biases, self.input_scale)
        return forward(pixels, self.weights, self.biases, self.activations, self.input_scale)

    def with_version(self, version: int) -> ModelArtifact:
        manifest = self.manifest | {"version": version}
        return ModelArtifact(
            self.name, version, self.activations, self.input_scale, self.weights,
            self.biases, manifest, self.canary_pixels,
        )

    def to_bytes(self) -> bytes:
        manifest = self.manifest | {
            "name": self.name,
            "version": self.version,
            "activations": list(self.activations),
            "input_scale": self.input_scale,
            "layers": [layer.to_json() for layer in self.layers] if self.layered else self.layer_sizes,
            "sha256": self.sha256,
        }
        manifest.setdefault("created_at", int(time.time() * 1000))
        arrays: dict[str, npt.NDArray[Any]] = {
            "manifest": np.frombuffer(json.dumps(manifest, sort_keys=True).encode(), np.uint8)
        }
        for index, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            arrays[f"weights_{index}"] = np.ascontiguousarray(w, np.float32)
            arrays[f"biases_{index}"] = np.ascontiguousarray(b, np.float32)
        if self.canary_pixels is not None:
            arrays["canary_pixels"] = self.canary_pixels
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]
        return buffer.getvalue()

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.to_bytes())
        return path

    @classmethod
    def from_bytes(cls, data: bytes) -> ModelArtifact:
        """Parse and verify an artifact; raise ArtifactError with a reason code on any defect."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in npz.files}
        except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
            detail = "not a .npz archive" if "pickled" in str(exc) else str(exc)  # numpy's hint is about pickles
            raise ArtifactError(f"not a readable .npz model artifact ({detail}); artifacts are written by "
                                "`streamscore train` (the bundled ones are in streamscore/models/)",
                                reason="unreadable") from None
        if "manifest" not in arrays:
            raise ArtifactError("artifact has no manifest array", reason="no-manifest")
        try:
            manifest = json.loads(arrays["manifest"].astype(np.uint8).tobytes())
            name = str(manifest["name"])
            version = int(manifest["version"])
            activations = tuple(str(a) for a in manifest["activations"])
            input_scale = float(manifest.get("input_scale", 1 / 255))
        except (ValueError, KeyError, TypeError) as exc:
            raise ArtifactError(f"manifest is invalid: {exc!r}", reason="bad-manifest") from None
        weights: list[F32] = []
        biases: list[F32] = []
        while f"weights_{len(weights)}" in arrays:
            index = len(weights)
            if f"biases_{index}" not in arrays:
                raise ArtifactError(f"layer {index} has weights but no biases", reason="bad-shape")
            weights.append(arrays[f"weights_{index}"])
            biases.append(arrays[f"biases_{index}"])
        artifact = cls(
            name, version, activations, input_scale, tuple(weights), tuple(biases), manifest,
            arrays.get("canary_pixels"),
        )
        artifact.validate(expected_sha256=manifest.get("sha256"))
        return artifact

    def validate(self, expected_sha256: str | None) -> None:
        """Check the contract: dtype, shapes 784 → … → 10, activations, version, digest, canary."""
        if not self.weights:
            raise ArtifactError("artifact has no layers (weights_0 missing)", reason="bad-shape")
        if self.version < 1:
            raise ArtifactError(f"version {self.version} is not a positive integer", reason="bad-version")
        if len(self.activations) != len(self.weights):
            raise ArtifactError(
                f"{len(self.activations)} activations for {len(self.weights)} layers",
                reason="bad-activation",
            )
        unknown = [a for a in self.activations if a not in ACTIVATIONS]
        if unknown:
            raise ArtifactError(
                f"unknown activation(s) {unknown}; known: {sorted(ACTIVATIONS)}",
                reason="bad-activation",
            )
        if self.layered:
            self._validate_layers()
        inputs = INPUTS
        for index, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            if w.dtype != np.float32 or b.dtype != np.float32:
                raise ArtifactError(f"layer {index} is not float32", reason="bad-dtype")
            if not self.layered and (w.ndim != 2 or w.shape[0] != inputs or b.shape != (w.shape[1],)):
                raise ArtifactError(
                    f"layer {index}: weights {w.shape} / biases {b.shape} do not take {inputs} inputs",
                    reason="bad-shape",
                )
            if not (np.isfinite(w).all() and np.isfinite(b).all()):
                raise ArtifactError(f"layer {index} has NaN or infinite values", reason="bad-values")
            inputs = w.shape[1] if w.ndim == 2 else -1
        if not self.layered and inputs != OUTPUTS:
            raise ArtifactError(f"the last layer gives {inputs} outputs, not {OUTPUTS}", reason="bad-shape")
        if expected_sha256 is None:
            raise ArtifactError("manifest has no sha256 of the weights", reason="no-digest")
        if expected_sha256 != self.sha256:
            raise ArtifactError(
                "sha256 of the weights does not match the manifest: corrupted or tampered",
                reason="bad-digest",
            )
        canary = self.manifest.get("canary")
        if canary is not None and self.canary_pixels is not None:
            got = predict(self.forward(self.canary_pixels)).tolist()
            if got != [int(c) for c in canary]:
                raise ArtifactError(
                    "the reference forward pass disagrees with the manifest's canary predictions",
                    reason="bad-canary",
                )

    def _validate_layers(self) -> None:
        """The format-2 checks: known layer types, activations as listed, shapes that chain."""
        layers = self.layers
        listed = tuple(layer.activation for layer in layers if layer.type in ("dense", "conv2d"))
        if listed != self.activations:
            raise ArtifactError(
                f"activations {list(self.activations)} differ from the layers' {list(listed)}",
                reason="bad-activation",
            )
        if any(w.ndim != 2 or b.ndim != 1 for w, b in zip(self.weights, self.biases, strict=True)):
            raise ArtifactError("every weights array must be (inputs, outputs), every biases array flat",
                                reason="bad-shape")
        check_shapes(layers, [(w.shape, b.shape) for w, b in zip(self.weights, self.biases, strict=True)], OUTPUTS)


def load_artifact(path: Path) -> ModelArtifact:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"cannot read model artifact {path}: {exc.strerror}", reason="unreadable") from None
    return ModelArtifact.from_bytes(data)


def build_artifact(
    name: str,
    version: int,
    weights: Sequence[F32],
    biases: Sequence[F32],
    activations: Sequence[str],
    *,
    metrics: dict[str, Any] | None = None,
    canary_pixels: npt.NDArray[np.uint8] | None = None,
    input_scale: float = 1 / 255,
    layers: Sequence[Layer] | None = None,
) -> ModelArtifact:
    """A new artifact with its manifest filled in (digest, canary predictions, metrics).

    ``layers`` makes a layered (format-2) artifact when any layer is not dense; a pure dense
    stack stays format 1 so that every consumer, old or new, accepts it.
    """
    head: dict[str, Any] = {"metrics": metrics or {}, "created_at": int(time.time() * 1000)}
    if layers is not None and any(layer.type != "dense" for layer in layers):
        head["layers"] = [layer.to_json() for layer in layers]
    artifact = ModelArtifact(
        name, version, tuple(activations), input_scale,
        tuple(np.ascontiguousarray(w, np.float32) for w in weights),
        tuple(np.ascontiguousarray(b, np.float32) for b in biases),
        head,
        canary_pixels,
    )
    manifest = artifact.manifest | {"sha256": artifact.sha256}
    if canary_pixels is not None:
        manifest["canary"] = predict(artifact.forward(canary_pixels)).tolist()
    return ModelArtifact(
        name, version, artifact.activations, input_scale, artifact.weights, artifact.biases,
        manifest, canary_pixels,
    )
