"""Model artifacts: round trip, and one test per rejection reason."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pytest

from streamscore.errors import ArtifactError
from streamscore.model.artifact import ModelArtifact, build_artifact, load_artifact
from streamscore.models import bundled_model, bundled_path
from streamscore.shared.mnist import MnistSplit


def small_net(canary: np.ndarray | None = None, version: int = 3) -> ModelArtifact:
    rng = np.random.default_rng(7)
    weights = [rng.normal(0, 0.05, (784, 16)).astype(np.float32), rng.normal(0, 0.3, (16, 10)).astype(np.float32)]
    biases = [np.zeros(16, np.float32), np.zeros(10, np.float32)]
    return build_artifact("mlp", version, weights, biases, ["relu", "softmax"], canary_pixels=canary)


def rewrite(data: bytes, **changes: Any) -> bytes:
    """Reload the npz, change arrays or manifest keys, and save it again without re-validating."""
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    manifest = json.loads(arrays["manifest"].tobytes())
    for name, value in changes.items():
        if name.startswith("manifest_"):
            key = name.removeprefix("manifest_")
            if value is None:
                manifest.pop(key, None)
            else:
                manifest[key] = value
        elif value is None:
            arrays.pop(name)
        else:
            arrays[name] = value
    if "manifest" in arrays:
        arrays["manifest"] = np.frombuffer(json.dumps(manifest).encode(), np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def test_round_trip_keeps_weights_and_digest(test_split: MnistSplit) -> None:
    artifact = small_net(test_split.images[:8])
    loaded = ModelArtifact.from_bytes(artifact.to_bytes())
    assert loaded.sha256 == artifact.sha256
    assert loaded.layer_sizes == [784, 16, 10]
    assert loaded.activations == ("relu", "softmax")
    assert np.array_equal(loaded.forward(test_split.images[:50]), artifact.forward(test_split.images[:50]))


def test_shipped_models_meet_their_recorded_accuracy(test_split: MnistSplit) -> None:
    for version, floor in ((1, 0.85), (2, 0.978), (3, 0.985), (4, 0.99)):
        model = bundled_model(version)
        accuracy = float((model.forward(test_split.images).argmax(1) == test_split.labels).mean())
        assert accuracy >= floor
        assert accuracy == pytest.approx(model.manifest["metrics"]["test_accuracy"], abs=1e-4)
    assert load_artifact(bundled_path(2)).version == 2


def test_with_version_keeps_digest() -> None:
    artifact = small_net()
    assert artifact.with_version(9).sha256 == artifact.sha256
    assert ModelArtifact.from_bytes(artifact.with_version(9).to_bytes()).version == 9


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"manifest": None}, "no-manifest"),
        ({"manifest_version": "seven"}, "bad-manifest"),
        ({"manifest_name": None}, "bad-manifest"),
        ({"manifest_version": 0}, "bad-version"),
        ({"manifest_sha256": None}, "no-digest"),
        ({"manifest_sha256": "0" * 64}, "bad-digest"),
        ({"manifest_activations": ["relu"]}, "bad-activation"),
        ({"manifest_activations": ["swish", "softmax"]}, "bad-activation"),
        ({"weights_0": np.zeros((783, 16), np.float32)}, "bad-shape"),
        ({"weights_1": np.zeros((16, 9), np.float32), "biases_1": np.zeros(9, np.float32)}, "bad-shape"),
        ({"biases_0": None}, "bad-shape"),
        ({"weights_0": None, "biases_0": None, "weights_1": None, "biases_1": None}, "bad-shape"),
        ({"weights_0": np.zeros((784, 16), np.float64)}, "bad-dtype"),
        ({"biases_1": np.full(10, np.nan, np.float32)}, "bad-values"),
    ],
)
def test_each_rejection_reason(changes: dict[str, Any], reason: str) -> None:
    data = rewrite(small_net().to_bytes(), **changes)
    with pytest.raises(ArtifactError) as caught:
        ModelArtifact.from_bytes(data)
    assert caught.value.reason == reason


def test_tampered_weights_fail_the_digest() -> None:
    artifact = small_net()
    tampered = artifact.weights[0].copy()
    tampered[0, 0] += 1.0
    with pytest.raises(ArtifactError) as caught:
        ModelArtifact.from_bytes(rewrite(artifact.to_bytes(), weights_0=tampered))
    assert caught.value.reason == "bad-digest"


def test_wrong_canary_is_rejected(test_split: MnistSplit) -> None:
    artifact = small_net(test_split.images[:4])
    wrong = [(int(c) + 1) % 10 for c in artifact.manifest["canary"]]
    with pytest.raises(ArtifactError) as caught:
        ModelArtifact.from_bytes(rewrite(artifact.to_bytes(), manifest_canary=wrong))
    assert caught.value.reason == "bad-canary"


@pytest.mark.parametrize("data", [b"", b"not a zip", b"PK\x03\x04garbage"])
def test_unreadable_bytes(data: bytes) -> None:
    with pytest.raises(ArtifactError) as caught:
        ModelArtifact.from_bytes(data)
    assert caught.value.reason == "unreadable"


def test_pickled_object_arrays_are_refused() -> None:
    buffer = io.BytesIO()
    np.savez(buffer, manifest=np.array([{"evil": True}], dtype=object))
    with pytest.raises(ArtifactError) as caught:
        ModelArtifact.from_bytes(buffer.getvalue())
    assert caught.value.reason == "unreadable"
