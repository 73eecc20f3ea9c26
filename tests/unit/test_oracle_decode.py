"""The PL/SQL pixel decode of sql/oracle/mnist_scorer.sql, ported line by line to Python.

No Oracle runs here, so ``decode_image``, ``zero_inputs`` and the pixel table of
``read_model`` are re-implemented with PL/SQL's types: ``UTL_RAW.CAST_TO_BINARY_INTEGER``
with ``BIG_ENDIAN`` is a signed 32-bit big-endian read, PLS_INTEGER arithmetic is checked for
overflow, and every BINARY_FLOAT assignment is a float32 store. The port must give the
reference's ``pixels.astype(np.float32) * np.float32(input_scale)`` bit for bit, on all
10,000 MNIST test images and on every byte value in every position of a word.
"""

from __future__ import annotations

import re
import struct

import numpy as np
import numpy.typing as npt
import pytest

from streamscore.backends.sqlfiles import read_sql
from streamscore.shared.mnist import MnistSplit

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


def test_decode_is_bit_exact_on_all_mnist_test_images(test_split: MnistSplit) -> None:
    images = test_split.images
    assert images.shape == (10_000, INPUTS)
    for start in range(0, len(images), MAX_CHUNK):
        chunk = images[start: start + MAX_CHUNK]
        assert_bit_exact(decode_chunk(chunk, 1 / 255), reference_inputs(chunk, 1 / 255))


@pytest.mark.parametrize("input_scale", [1 / 255, 1.0, 0.00392156862745098, 1 / 127.5, 3.3e-3])
def test_every_byte_value_in_every_word_position(input_scale: float) -> None:
    """Bytes >= 128 make the big-endian word negative: each value in each of the 4 positions."""
    images = np.zeros((4 * 256 // 28 + 40, INPUTS), dtype=np.uint8)
    rng = np.random.default_rng(16)
    for position in range(4):
        for byte in range(256):
            cell = position * 256 + byte
            image, word = divmod(cell, 196)
            images[image, 4 * word + position] = byte
    images[-20:] = rng.integers(0, 256, size=(20, INPUTS), dtype=np.uint8)  # dense, no zero runs
    images[-1, :] = 255
    assert_bit_exact(decode_chunk(images, input_scale), reference_inputs(images, input_scale))


def test_a_short_last_chunk_is_trimmed_to_its_images() -> None:
    assert zero_inputs(3).shape == (3 * INPUTS,)
    assert zero_inputs(MAX_CHUNK).shape == (MAX_CHUNK * INPUTS,)


def test_the_port_follows_the_package_source() -> None:
    """The constants and calls the port assumes are the ones in mnist_scorer.sql."""
    source = read_sql("oracle", "mnist_scorer.sql")
    body = source[source.index("PROCEDURE decode_image"): source.index("END decode_image")]
    for fragment in (
        "UTL_RAW.CAST_TO_BINARY_INTEGER(UTL_RAW.SUBSTR(l_row, 4 * q + 1, 4),",
        "UTL_RAW.BIG_ENDIAN",
        "IF l_row <> c_zero_row THEN",
        "l_word := (l_word + 2147483647) + 1;",
        "x(l_at + 1) := p_value(l_top + l_byte);",
        "x(l_at + 4) := p_value(l_word - l_byte * 256);",
    ):
        assert fragment in body, fragment
    for constant, value in (("c_row_bytes", ROW_BYTES), ("c_row_words", ROW_WORDS),
                            ("c_max_chunk", MAX_CHUNK), ("c_inputs", INPUTS)):
        assert re.search(rf"{constant}\s+CONSTANT PLS_INTEGER := {value};", source), constant
    assert "l_model.pixel_value(p) := TO_BINARY_FLOAT(p) * l_model.input_scale;" in source
    assert "RAWTOHEX" not in source.split("CREATE OR REPLACE PACKAGE BODY")[1]


def test_plsql_timing_is_a_url_option_that_never_reaches_connect() -> None:
    from streamscore.backends.oracle import statements as oracle_sql
    from streamscore.backends.url import BackendURL
    from streamscore.errors import ConfigError

    target = oracle_sql.parse_target(BackendURL.parse("oracle://app@db/FREEPDB1?plsql_timing=1"))
    assert target.plsql_timing and "plsql_timing" not in target.connect_options
    assert not oracle_sql.parse_target(BackendURL.parse("oracle://app@db/FREEPDB1")).plsql_timing
    with pytest.raises(ConfigError, match="plsql_timing"):
        oracle_sql.parse_target(BackendURL.parse("oracle://app@db/FREEPDB1?plsql_timing=2"))


def test_every_timed_phase_is_reported_by_timings() -> None:
    source = read_sql("oracle", "mnist_scorer.sql")
    timings = source[source.index("FUNCTION timings RETURN VARCHAR2 IS"): source.index("END timings")]
    ticked = set(re.findall(r"tick\('(\w+)'", source)) | set(re.findall(r"count_up\('(\w+)'", source))
    assert ticked == {"load", "fetch", "decode", "gemm", "activate", "store", "images", "batches"}
    for phase in ticked:
        assert f"'{phase}'" in timings, phase
