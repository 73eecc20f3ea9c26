"""Python ports of MNIST_SCORER (sql/oracle/mnist_scorer.sql) with Oracle's types, for the unit tests.

No Oracle runs here, so the package's arithmetic is re-implemented statement by statement:

* the pixel decode (``read_model``'s table, ``zero_inputs``, ``decode_image``):
  ``UTL_RAW.CAST_TO_BINARY_INTEGER(…, BIG_ENDIAN)`` is a signed 32-bit big-endian read,
  PLS_INTEGER arithmetic is checked for overflow, every BINARY_FLOAT assignment is a float32
  store;
* ``score_rows``/``score_chunk``: chunks of ``LEAST(c_max_chunk, TRUNC(c_max_entries /
  widest))`` images; ``UTL_NLA.BLAS_GEMM('N', 'N', …)`` as netlib's reference SGEMM computes
  it (for each column j, for l = 1..k, ``C(:, j) += (alpha * B(l, j)) * A(:, l)`` in float32,
  one rounding per multiply and per add, no FMA; the slim/regular gvenzl images point
  Oracle's BLAS at netlib, MKL sums in another order); the activations in BINARY_DOUBLE with
  float32 stores; argmax keeping the first maximum.

tests/unit/test_oracle_decode.py and test_oracle_chunk_port.py check them against the numpy
reference and tie them to the package source.
"""

from __future__ import annotations

import itertools
import struct

import numpy as np
import numpy.typing as npt

from streamscore.model.artifact import ModelArtifact, build_artifact
from streamscore.model.reference import predict
from streamscore.shared.mnist import MnistSplit

F32 = npt.NDArray[np.float32]
INPUTS = 784
ROW_BYTES = 28
ROW_WORDS = 7
MAX_CHUNK = 500
PLS_INTEGER_MIN, PLS_INTEGER_MAX = -(2**31), 2**31 - 1
ZERO_ROW = bytes(ROW_BYTES)


def pls(value: int) -> int:
    """A PLS_INTEGER result: Oracle raises ORA-01426 (numeric overflow) outside 32 bits."""
    assert PLS_INTEGER_MIN <= value <= PLS_INTEGER_MAX, f"PLS_INTEGER overflow: {value}"
    return value


def cast_to_binary_integer_big_endian(raw: bytes) -> int:
    """UTL_RAW.CAST_TO_BINARY_INTEGER(raw, UTL_RAW.BIG_ENDIAN) for 4 bytes: a signed int32."""
    assert len(raw) == 4
    value: int = struct.unpack(">i", raw)[0]
    return value


def pixel_values(input_scale: float) -> dict[int, np.float32]:
    """read_model: ``l_model.pixel_value(p) := TO_BINARY_FLOAT(p) * l_model.input_scale``."""
    scale = np.float32(input_scale)  # l_model.input_scale := TO_BINARY_FLOAT(p_input_scale)
    return {p: np.float32(np.float32(p) * scale) for p in range(256)}


def zero_inputs(images: int) -> npt.NDArray[np.float32]:
    """zero_inputs: a copy of the cached zeros, trimmed to 784 x images."""
    zeros = np.zeros(INPUTS * MAX_CHUNK, dtype=np.float32)
    x = zeros.copy()  # x := g_zeros
    if images < MAX_CHUNK:
        x = x[: INPUTS * images].copy()  # x.TRIM(...)
    return x


def decode_image(image: bytes, base: int, value: dict[int, np.float32], x: npt.NDArray[np.float32]) -> None:
    """decode_image, statement by statement (x is 0-based here, PL/SQL's x(i) is x[i - 1])."""
    for r in range(ROW_BYTES):
        row = image[r * ROW_BYTES: r * ROW_BYTES + ROW_BYTES]  # UTL_RAW.SUBSTR(p_image, r*28+1, 28)
        if row != ZERO_ROW:
            for q in range(ROW_WORDS):
                word = cast_to_binary_integer_big_endian(row[4 * q: 4 * q + 4])
                if word != 0:
                    at = pls(base + r * ROW_BYTES + 4 * q)
                    top = 0
                    if word < 0:
                        top = 128
                        word = pls(pls(word + 2147483647) + 1)
                    assert word >= 0  # TRUNC(word / k) is floor division from here on
                    byte = word // 16777216
                    x[at + 0] = value[top + byte]
                    word = pls(word - pls(byte * 16777216))
                    byte = word // 65536
                    x[at + 1] = value[byte]
                    word = pls(word - pls(byte * 65536))
                    byte = word // 256
                    x[at + 2] = value[byte]
                    x[at + 3] = value[pls(word - pls(byte * 256))]


def decode_chunk(pixels: npt.NDArray[np.uint8], input_scale: float) -> npt.NDArray[np.float32]:
    """score_chunk's decode loop: images as columns of x', returned as (images, 784)."""
    value = pixel_values(input_scale)
    x = zero_inputs(len(pixels))
    for j, image in enumerate(pixels):
        decode_image(image.tobytes(), j * INPUTS, value, x)
    return x.reshape(len(pixels), INPUTS)


def reference_inputs(pixels: npt.NDArray[np.uint8], input_scale: float) -> npt.NDArray[np.float32]:
    """The first line of streamscore.model.reference.forward."""
    inputs: npt.NDArray[np.float32] = pixels.astype(np.float32) * np.float32(input_scale)
    return inputs


def assert_bit_exact(ported: npt.NDArray[np.float32], expected: npt.NDArray[np.float32]) -> None:
    assert ported.dtype == expected.dtype == np.float32
    assert ported.shape == expected.shape
    assert np.array_equal(ported.view(np.uint32), expected.view(np.uint32))


MAX_ENTRIES = 1_000_000


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
