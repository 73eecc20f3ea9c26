"""The PL/SQL pixel decode of sql/oracle/mnist_scorer.sql, as ported line by line in
tests/oracle_ports.py (PL/SQL's types: signed 32-bit big-endian reads, PLS_INTEGER overflow
checks, float32 stores). The port must give the reference's
``pixels.astype(np.float32) * np.float32(input_scale)`` bit for bit, on all 10,000 MNIST
test images and on every byte value in every position of a word, and follow the source.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from oracle_ports import (
    INPUTS,
    MAX_CHUNK,
    ROW_BYTES,
    ROW_WORDS,
    assert_bit_exact,
    decode_chunk,
    reference_inputs,
    zero_inputs,
)
from streamscore.backends.sqlfiles import read_sql
from streamscore.shared.mnist import MnistSplit


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
