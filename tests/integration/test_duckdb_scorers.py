"""Both DuckDB scorers (vectorized UDF and pure SQL) against the numpy reference on real MNIST."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from streamscore.backends import ModelRef, open_backend
from streamscore.model.artifact import build_artifact
from streamscore.models import bundled_model
from streamscore.shared.mnist import MnistSplit


@pytest.mark.parametrize("scorer", ["udf", "sql"])
def test_scorer_agrees_with_reference(scorer: str, tmp_path: Path, test_split: MnistSplit) -> None:
    model = bundled_model(2)
    with open_backend(f"duckdb:///{tmp_path}/s.duckdb?scorer={scorer}") as backend:
        backend.init_schema()
        backend.install_model(model)
        got = backend.score(test_split.images, ModelRef(model.name, model.version))
    expected = model.forward(test_split.images)
    assert got.shape == (10_000, 10)
    assert (got.argmax(1) == expected.argmax(1)).mean() >= 0.999
    assert np.abs(got - expected).max() <= 1e-4


def test_sql_scorer_handles_every_activation(tmp_path: Path, test_split: MnistSplit) -> None:
    rng = np.random.default_rng(3)
    sizes = [784, 32, 24, 16, 12, 10]
    weights = [rng.normal(0, 0.1, (a, b)).astype(np.float32) for a, b in itertools.pairwise(sizes)]
    biases = [rng.normal(0, 0.1, b).astype(np.float32) for b in sizes[1:]]
    model = build_artifact("deep", 1, weights, biases, ["relu", "tanh", "identity", "sigmoid", "softmax"])
    with open_backend(f"duckdb:///{tmp_path}/d.duckdb?scorer=sql") as backend:
        backend.init_schema()
        backend.install_model(model)
        got = backend.score(test_split.images[:500], ModelRef("deep", 1))
        assert backend.load_model(ModelRef("deep", 1)).sha256 == model.sha256
    np.testing.assert_allclose(got, model.forward(test_split.images[:500]), atol=1e-4)
