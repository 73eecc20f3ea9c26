"""MNIST_SCORER's score_staged/score_chunk, as ported in tests/oracle_ports.py (netlib SGEMM's
loop order in float32, PL/SQL's BINARY_DOUBLE/BINARY_FLOAT arithmetic), against the reference.

It must agree with the numpy reference on all 10,000 MNIST test images within the promise
the integration test checks on a real database (argmax ≥ 99.9 %, |Δp| ≤ 1e-4), every
UTL_NLA array it builds must stay within UTL_NLA_ARRAY_FLT's 1,000,000 entries, and the
rules it assumes must be the package's.
"""

from __future__ import annotations

import re

import pytest

from oracle_ports import (
    MAX_CHUNK,
    assert_agrees,
    build_artifact,
    chunk_size,
    fitted_artifact,
    predict,
    score_batch,
)
from streamscore.backends.sqlfiles import read_sql
from streamscore.shared.mnist import MnistSplit


@pytest.mark.parametrize(
    ("sizes", "activations", "seed"),
    [
        ((784, 100, 10), ("sigmoid", "softmax"), 1),
        ((784, 64, 16, 10), ("relu", "tanh", "softmax"), 2),
        ((784, 32, 10), ("tanh", "softmax"), 3),
    ],
)
def test_the_port_agrees_with_the_reference_on_all_mnist_test_images(
    test_split: MnistSplit, sizes: tuple[int, ...], activations: tuple[str, ...], seed: int,
) -> None:
    artifact = fitted_artifact(sizes, activations, seed, test_split)
    assert chunk_size(artifact) == MAX_CHUNK
    reference = artifact.forward(test_split.images)
    assert len(set(predict(reference).tolist())) == 10  # every digit is predicted somewhere
    assert_agrees(score_batch(test_split.images, artifact), reference)


def test_a_wide_layer_shrinks_the_chunk_and_every_array_fits_utl_nla(test_split: MnistSplit) -> None:
    """widest 2400: chunks of 416 images, z' of 2400 x 416 = 998,400 entries (<= 1,000,000)."""
    artifact = fitted_artifact((784, 400, 2400, 10), ("relu", "sigmoid", "softmax"), 4, test_split)
    assert chunk_size(artifact) == 416
    pixels = test_split.images[:1000]  # 416 + 416 + 168: a short last chunk too
    assert_agrees(score_batch(pixels, artifact), artifact.forward(pixels))


def test_the_port_reads_its_rules_from_the_package() -> None:
    source = read_sql("oracle", "mnist_scorer.sql")
    assert "l_chunk  CONSTANT PLS_INTEGER := LEAST(c_max_chunk, TRUNC(c_max_entries / g_models(p_key).widest));" \
        in source
    assert re.search(r"c_max_entries CONSTANT PLS_INTEGER := 1000000;", source)
    assert "z(i) := 1d / (1d + EXP(-TO_BINARY_DOUBLE(z(i))));" in source
    assert "z(i) := 1d - 2d / (EXP(2d * TO_BINARY_DOUBLE(z(i))) + 1d);" in source
    assert "z(l_base + k) := exp_clamped(z(l_base + k) - l_max);" in source
    assert "IF x(l_base + k) > x(l_base + l_best) THEN" in source
    assert "c_one,                            -- beta" in source


def test_the_agreement_check_can_fail(test_split: MnistSplit) -> None:
    """A transposed weight layout (lda = n_in) is caught on real images."""
    artifact = fitted_artifact((784, 100, 10), ("sigmoid", "softmax"), 1, test_split)
    wrong = build_artifact("wrong", 1, [artifact.weights[0].T.copy().reshape(784, 100), artifact.weights[1]],
                           list(artifact.biases), artifact.activations)
    with pytest.raises(AssertionError):
        assert_agrees(score_batch(test_split.images[:500], wrong), artifact.forward(test_split.images[:500]))
