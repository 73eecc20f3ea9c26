"""Against a real Kinetica (runs only when STREAMSCORE_TEST_KINETICA_URL is set)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kinetica_fixtures import kinetica_url  # noqa: F401
from streamscore.backends import ImageBatch, ModelRef, SourceOffset, open_backend
from streamscore.backends.kinetica import KineticaBackend
from streamscore.model.artifact import build_artifact
from streamscore.shared.mnist import load_split

pytestmark = pytest.mark.kinetica


def test_write_batch_replay_and_models(kinetica_url: str) -> None:  # noqa: F811
    test = load_split("test")
    rng = np.random.default_rng(0)
    artifact = build_artifact(
        "mlp", 1, [rng.normal(0, 0.05, (784, 32)).astype(np.float32),
                   rng.normal(0, 0.05, (32, 10)).astype(np.float32)],
        [np.zeros(32, np.float32), np.zeros(10, np.float32)], ["sigmoid", "softmax"])
    backend = open_backend(kinetica_url)
    assert isinstance(backend, KineticaBackend)
    with backend:
        backend.init_schema()
        backend.init_schema()  # twice is harmless
        backend.install_model(artifact)
        assert backend.installed_versions("mlp") == [1]
        assert backend.load_model(ModelRef("mlp", 1)).sha256 == artifact.sha256
        n = 50
        batch = ImageBatch(
            "it-1", [test.image_id(i) for i in range(n)], test.images[:n],
            test.labels[:n].astype(np.int16), np.full(n, 1, np.int64),
            [SourceOffset("mnist.images", 0, i) for i in range(n)], {("mnist.images", 0): n},
        )
        first = backend.write_batch(batch, ModelRef("mlp", 1), "g")
        again = backend.write_batch(batch, ModelRef("mlp", 1), "g")  # replay converges
        want = artifact.forward(test.images[:n])
        assert np.abs(first.probabilities - want).max() <= 1e-4
        assert (again.predicted == first.predicted).all()
        assert backend.stored_offsets("g", "mnist.images") == {0: n}
        assert np.abs(backend.score(test.images[:5], ModelRef("mlp", 1)) - want[:5]).max() <= 1e-4
