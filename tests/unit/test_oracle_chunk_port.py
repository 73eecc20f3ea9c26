"""MNIST_SCORER's score_staged/score_chunk ported to Python with Oracle's types and netlib's order.

No Oracle runs here. The port follows sql/oracle/mnist_scorer.sql step by step:

* chunks of ``LEAST(c_max_chunk, TRUNC(c_max_entries / widest))`` images;
* the decode of test_oracle_decode.py (bit-exact with the reference's input scaling);
* ``UTL_NLA.BLAS_GEMM('N', 'N', …)`` as netlib's reference SGEMM computes it: for each image
  column j, for l = 1..k, ``C(:, j) += (alpha * B(l, j)) * A(:, l)`` in float32, one rounding
  per multiply and per add (no FMA), starting from the bias (beta = 1). The slim/regular
  gvenzl images point Oracle's BLAS at netlib; MKL (full image) sums in another order;
* the activations with PL/SQL's BINARY_DOUBLE arithmetic and a float32 store on every
  BINARY_FLOAT assignment; argmax keeping the first maximum.

It must agree with the numpy reference on all 10,000 MNIST test images within the promise
the integration test checks on a real database (argmax ≥ 99.9 %, |Δp| ≤ 1e-4), and every
UTL_NLA array it builds must stay within UTL_NLA_ARRAY_FLT's 1,000,000 entries.
"""

from __future__ import annotations

import itertools
import re

import numpy as np
import numpy.typing as npt
import pytest
from test_oracle_decode import decode_chunk

from streamscore.backends.sqlfiles import read_sql
from streamscore.model.artifact import ModelArtifact, build_artifact
from streamscore.model.reference import predict
from streamscore.shared.mnist import MnistSplit

F32 = npt.NDArray[np.float32]
MAX_ENTRIES = 1_000_000
MAX_CHUNK = 500
INPUTS = 784


def random_artifact(sizes: tuple[int, ...], activations: tuple[str, ...], seed: int) -> ModelArtifact:
    rng = np.random.default_rng(seed)
    weights = [rng.normal(0, 1 / np.sqrt(a), (a, b)).astype(np.float32) for a, b in itertools.pairwise(sizes)]
    biases = [rng.normal(0, 0.1, b).astype(np.float32) for b in sizes[1:]]
    return build_artifact(f"port-{seed}", 1, weights, biases, activations)


def fitted_artifact(sizes: tuple[int, ...], activations: tuple[str, ...], seed: int,
                    split: MnistSplit) -> ModelArtifact:
    """Random hidden layers, the last layer fitted by least squares to 2,000 labelled images:
    a classifier with varied predictions and near ties (a random head predicts one class)."""
    base = random_artifact(sizes, activations, seed)
    hidden = build_artifact("hidden", 1, list(base.weights[:-1]), list(base.biases[:-1]), base.activations[:-1])
    features = hidden.forward(split.images[:2000]).astype(np.float64)
    design = np.hstack([features, np.ones((len(features), 1))])
    targets = 8.0 * np.eye(10)[split.labels[:2000]] - 4.0                  # logits of a one-hot
    solution = np.linalg.lstsq(design, targets, rcond=None)[0].astype(np.float32)
    weights = [*base.weights[:-1], solution[:-1]]
    biases = [*base.biases[:-1], solution[-1]]
    return build_artifact(f"fitted-{seed}", 1, weights, biases, activations)


def chunk_size(artifact: ModelArtifact) -> int:
    """score_rows: LEAST(c_max_chunk, TRUNC(c_max_entries / widest)), widest >= 784."""
    widest = max([INPUTS, *(int(w.shape[1]) for w in artifact.weights)])
    return min(MAX_CHUNK, MAX_ENTRIES // widest)


def netlib_sgemm_nn(m: int, n: int, k: int, a: F32, lda: int, b: F32, ldb: int, c: F32, ldc: int) -> None:
    """Reference SGEMM, TRANSA = TRANSB = 'N', ALPHA = BETA = 1, column-major flat arrays.

    DO J = 1, N; DO L = 1, K; TEMP = ALPHA*B(L,J); DO I = 1, M; C(I,J) = C(I,J) + TEMP*A(I,L).
    The J loop is vectorised (columns are independent); L runs in order, as in Fortran.
    """
    assert lda >= m and ldb >= k and ldc >= m
    for array, entries in ((a, lda * k), (b, ldb * n), (c, ldc * n)):
        assert array.dtype == np.float32 and array.size >= entries and array.size <= MAX_ENTRIES
    a_cols = a[: lda * k].reshape(k, lda)[:, :m]          # A(:, L) = a_cols[L]
    b_cols = b[: ldb * n].reshape(n, ldb)[:, :k]          # B(L, J) = b_cols[J, L]
    c_cols = c[: ldc * n].reshape(n, ldc)                 # C(:, J) = c_cols[J]
    for step in range(k):
        temp = np.float32(1) * b_cols[:, step]            # TEMP = ALPHA*B(L,J), every J
        c_cols[:, :m] += temp[:, None] * a_cols[step][None, :]  # float32 product, float32 sum


def activate(name: str, z: F32, rows: int, cols: int) -> None:
    """The package's activate(), on z' (rows outputs x cols images, column-major), in place."""
    view = z[: rows * cols]
    if name == "identity":
        return
    if name == "relu":
        view[view < np.float32(0)] = np.float32(0)
        return
    if name in ("sigmoid", "tanh"):
        clamp = np.float32(80 if name == "sigmoid" else 20)
        low, high = (np.float32(0), np.float32(1)) if name == "sigmoid" else (np.float32(-1), np.float32(1))
        middle = (view >= -clamp) & (view <= clamp)
        double = view[middle].astype(np.float64)
        sigmoid = 1.0 / (1.0 + np.exp(-double))                         # 1d / (1d + EXP(-z))
        tanh = 1.0 - 2.0 / (np.exp(2.0 * double) + 1.0)                 # 1d - 2d / (EXP(2d*z) + 1d)
        value = sigmoid if name == "sigmoid" else tanh
        lows, highs = view < -clamp, view > clamp
        view[middle] = value.astype(np.float32)                         # BINARY_FLOAT store
        view[lows], view[highs] = low, high
        return
    assert name == "softmax"
    columns = view.reshape(cols, rows)                                  # column j = image j
    l_max = columns[:, 0].astype(np.float64)
    for k in range(1, rows):                                            # strict >: first maximum
        l_max = np.where(columns[:, k] > l_max, columns[:, k].astype(np.float64), l_max)
    l_sum = np.zeros(cols, dtype=np.float64)
    for k in range(rows):
        shifted = columns[:, k].astype(np.float64) - l_max              # BINARY_FLOAT - BINARY_DOUBLE
        value = np.where(shifted < -80.0, 0.0, np.exp(np.maximum(shifted, -80.0)))  # exp_clamped
        columns[:, k] = value.astype(np.float32)                        # z(k) := … (float32)
        l_sum = l_sum + columns[:, k].astype(np.float64)                # l_sum + z(k), in double
    for k in range(rows):
        columns[:, k] = (columns[:, k].astype(np.float64) / l_sum).astype(np.float32)


def score_chunk(pixels: npt.NDArray[np.uint8], artifact: ModelArtifact) -> F32:
    """score_chunk for one chunk: probabilities (images, 10) as the package would store them."""
    images = len(pixels)
    x = np.ascontiguousarray(decode_chunk(pixels, artifact.input_scale)).reshape(-1)  # x': column per image
    for w, b, activation in zip(artifact.weights, artifact.biases, artifact.activations, strict=True):
        n_in, n_out = (int(size) for size in w.shape)
        assert w.size <= MAX_ENTRIES                                    # install_model refuses more
        z = np.tile(b.astype(np.float32), images)                       # every column of z' starts as b
        netlib_sgemm_nn(n_out, images, n_in, np.ascontiguousarray(w, np.float32).reshape(-1), n_out,
                        x, n_in, z, n_out)
        activate(activation, z, n_out, images)
        x = z                                                           # x := z
    return x.reshape(images, -1)


def score_batch(pixels: npt.NDArray[np.uint8], artifact: ModelArtifact) -> F32:
    size = chunk_size(artifact)
    return np.concatenate([score_chunk(pixels[start: start + size], artifact)
                           for start in range(0, len(pixels), size)])


def assert_agrees(ported: F32, reference: F32) -> None:
    agreement = float(np.mean(predict(ported) == predict(reference)))
    assert agreement >= 0.999, agreement
    assert float(np.abs(ported - reference).max()) <= 1e-4


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
